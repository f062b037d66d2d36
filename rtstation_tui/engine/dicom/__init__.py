"""What a DICOM file says, read without decoding pixels: the header parse into ``InstanceInfo`` (``header``, with a
pydicom-free fast path in ``quickheader``), the element-length walk that catches truncation (``lengthwalk``), SOP
class facts (``sopclass``) and the AE title rules (``aetitle``). Knows nothing of the store or the network."""
