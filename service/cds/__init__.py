"""The CDS Hooks use cases: the service catalogue, locating the QR, the screen, the hook
call and feedback. Knows no Flask and no SQL; its collaborators are passed in."""
