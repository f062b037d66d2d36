"""rtstation: a DICOM-RT station with a Textual operator console."""

__version__ = "0.1.0"
