#!/usr/bin/env python3
"""Write raw Ethernet frames (one file each) into a classic pcap file.

usage: raw2pcap.py [--mutate SEED] OUT.pcap FRAME_FILE...

No extra packages: the pcap format is written by hand (LINKTYPE_ETHERNET).
With --mutate, every frame is followed by hostile variants: every prefix
(truncations), single-byte changes of every header/length/count byte to
0x00, 0xff and +1, and 64 random multi-byte corruptions (seeded, so runs
repeat). Variants are for robustness only: they may well be malformed.
"""
import random
import struct
import sys


def variants(data, rng):
    yield data
    for n in range(len(data)):
        yield data[:n]
    for i in range(12, len(data)):
        for v in (0x00, 0xFF, (data[i] + 1) & 0xFF):
            if v != data[i]:
                yield data[:i] + bytes([v]) + data[i + 1:]
    for _ in range(64):
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if len(b) > 14:
                b[rng.randrange(14, len(b))] = rng.randrange(256)
        if rng.random() < 0.3:
            b = b[: rng.randrange(len(b) + 1)]
        elif rng.random() < 0.3:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        yield bytes(b)


def main(argv):
    args = argv[1:]
    rng = None
    if args[:1] == ["--mutate"]:
        if len(args) < 2:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        rng = random.Random(int(args[1]))
        args = args[2:]
    if len(args) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, frames = args[0], args[1:]
    n = 0
    with open(out, "wb") as f:
        # magic, version 2.4, thiszone, sigfigs, snaplen, linktype 1 (Ethernet)
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for path in frames:
            with open(path, "rb") as g:
                data = g.read()
            for d in variants(data, rng) if rng else [data]:
                f.write(struct.pack("<IIII", 1_700_000_000 + n // 1000, n % 1000, len(d), len(d)))
                f.write(d)
                n += 1
    print(f"raw2pcap: {n} frames from {len(frames)} files -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
