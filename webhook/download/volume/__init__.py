"""Putting bytes on the volume: checked file-system primitives, the lock beside
the destination, the layout and atomic publish, room on the volume, and `gc`."""
