"""
A short receive path for the gateway's websocket frames.

Discord sends the relay one kind of frame almost always: a whole message in
one unmasked data frame (FIN set, no extension bits, text or binary).  For
those the relay reads the header here and hands the payload on, skipping
Autobahn's generic per-frame machinery (frame and message begin/data/end
callbacks, buffer copies, incremental UTF-8 validation), which took about as
much CPU per dispatch as inflating and parsing it.  Everything else (control
frames, fragments, masked frames, frames split over reads, text that is not
valid UTF-8) stops the short path and goes to Autobahn with every byte after
it, so what Autobahn checks and answers is unchanged.

RFC 6455, section 5.2: byte 0 is FIN, RSV1-3 and the opcode; byte 1 the
MASK bit and a 7-bit length, 126 meaning a 16-bit length follows, 127 a
64-bit one; then the payload.
"""

from __future__ import annotations

from collections.abc import Callable

#: FIN set, RSV 0: the high nibble of byte 0 of a whole, plain data frame
_FIN_ONLY = 0x80
_TEXT = 0x1
_BINARY = 0x2


def split_whole_frames(
    data: bytes, deliver: Callable[[bytes, bool], bool], validate_text: bool
) -> int:
    """
    Hand each whole, unmasked, unfragmented data frame at the start of
    ``data`` to ``deliver(payload, is_binary)``, in order, while it returns
    True.

    :param validate_text: refuse (leave to the caller) a text frame that is
        not valid UTF-8, as Autobahn would fail the connection for it.
    :return: how many bytes of ``data`` were consumed; the rest (from the
        first frame this path does not take) is the caller's.
    """
    end = len(data)
    at = 0
    while end - at >= 2:
        first = data[at]
        second = data[at + 1]
        opcode = first & 0x0F
        if first & 0xF0 != _FIN_ONLY or second & 0x80 or (opcode != _BINARY and opcode != _TEXT):
            break
        length = second & 0x7F
        start = at + 2
        if length == 126:
            start = at + 4
            if start > end:
                break
            length = (data[at + 2] << 8) | data[at + 3]
        elif length == 127:
            start = at + 10
            if start > end:
                break
            length = int.from_bytes(data[at + 2:start], "big")
        stop = start + length
        if stop > end:
            break
        payload = data[start:stop]
        if opcode == _TEXT and validate_text and not payload.isascii():
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                break
        at = stop
        if not deliver(payload, opcode == _BINARY):
            break
    return at
