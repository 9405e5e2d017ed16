"""Turn Xvfb's framebuffer file (``Xvfb -fbdir DIR`` writes ``DIR/Xvfb_screen0``, an XWD
image) into a PNG, and say whether it shows anything: standard library only, so it runs
with the bare Python of a fresh machine.

    python3 xwd2png.py Xvfb_screen0 [out.png]

Exit 0 when the screen is not blank (enough pixels differ from the black root window of
``Xvfb -br``, in enough colors), 1 when it is blank, 2 when the file cannot be read.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

MIN_LIT_FRACTION = 0.05  # the window covers far more than this of a 1280x800 screen
MIN_COLORS = 8  # text, frames, icons: a flat rectangle is not a window


def read_xwd(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and one RGB row (bytes) per line of a 24/32-bit ZPixmap XWD."""
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format = fields[0], fields[1], fields[2]
    width, height = fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14], fields[15], fields[16]
    ncolors = fields[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel not in (24, 32):
        raise ValueError(f"unsupported XWD: version {version}, format {pixmap_format}, "
                         f"{bits_per_pixel} bits per pixel")
    start = header_size + 12 * ncolors
    step = bits_per_pixel // 8
    order = "little" if byte_order == 0 else "big"

    def shift(mask: int) -> int:
        return (mask & -mask).bit_length() - 1

    shifts = [(mask, shift(mask)) for mask in (red_mask, green_mask, blue_mask)]
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line: start + y * bytes_per_line + width * step]
        if len(line) < width * step:
            raise ValueError("the XWD file is shorter than its header says")
        row = bytearray()
        for x in range(0, width * step, step):
            pixel = int.from_bytes(line[x:x + step], order)
            row.extend((pixel & mask) >> s for mask, s in shifts)
        rows.append(bytes(row))
    return width, height, rows


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        width, height, rows = read_xwd(Path(argv[1]).read_bytes())
    except (OSError, ValueError, struct.error) as error:
        print(f"cannot read {argv[1]}: {error}", file=sys.stderr)
        return 2
    colors: Counter[bytes] = Counter()
    for row in rows:
        colors.update(row[x:x + 3] for x in range(0, len(row), 3))
    lit = 1 - colors[b"\x00\x00\x00"] / (width * height)
    blank = lit < MIN_LIT_FRACTION or len(colors) < MIN_COLORS
    print(f"{width}x{height}, {lit:.0%} of the screen drawn, {len(colors)} colors: "
          + ("blank" if blank else "not blank"))
    if len(argv) == 3:
        Path(argv[2]).write_bytes(png(width, height, rows))
    return 1 if blank else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
