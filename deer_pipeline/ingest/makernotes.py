"""Camera serial numbers and user labels hidden in trail-camera maker notes.

Two cameras of the same model at one location are told apart only by their serial or by the
label the user typed into the camera. Most trail cameras write neither to standard EXIF; Reconyx
writes both into its maker note, at fixed offsets documented by ExifTool (``Reconyx.pm``):

- HyperFire / RapidFire (PC900, HC600; note starts with ``01 F1``): serial as UTF-16LE at byte 42
  (15 characters), label as ASCII at byte 86 (22 bytes).
- UltraFire (note starts with ``RECONYXUF``): serial ASCII at 0x4B (15), label at 0x5A (21).
- HyperFire 2 (``RECONYXH2``): label ASCII at 0x68 (22), serial UTF-16LE at 0x7E (15 characters).

The serial wins; the label is the fallback. Unknown makers give None.
"""

from __future__ import annotations

_LAYOUTS = {
    # name: (prefix, serial offset, serial bytes, serial is UTF-16, label offset, label bytes)
    "hyperfire": (b"\x01\xf1", 42, 30, True, 86, 22),
    "ultrafire": (b"RECONYXUF\x00", 0x4B, 15, False, 0x5A, 21),
    "hyperfire2": (b"RECONYXH2\x00", 0x7E, 30, True, 0x68, 22),
}


def _text(raw: bytes, utf16: bool) -> str | None:
    if utf16:
        raw = raw[: len(raw) // 2 * 2].decode("utf-16-le", "replace").encode("utf-8")
    text = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    printable = text.isprintable() and "\ufffd" not in text
    return text if text and printable else None


def makernote_serial(make: str | None, note: bytes | object | None) -> str | None:
    """Return the camera serial (or, failing that, the user label) from a maker note.

    Args:
        make: the cleaned EXIF Make (the HyperFire layout has no text prefix, so it is trusted
            only when the Make says RECONYX).
        note: the raw MakerNote bytes.

    Returns:
        The serial or label, or None when the note has neither or is not understood.
    """
    if not isinstance(note, bytes):
        return None
    for name, (prefix, s_off, s_len, s_utf16, l_off, l_len) in _LAYOUTS.items():
        if not note.startswith(prefix):
            continue
        if name == "hyperfire" and (make or "").upper() != "RECONYX":
            continue
        if len(note) < s_off + s_len:
            return None
        serial = _text(note[s_off : s_off + s_len], s_utf16)
        return serial or _text(note[l_off : l_off + l_len], False)
    return None
