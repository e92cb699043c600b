"""MPEG audio frames of an MP3 file: where they start, and the file cut a few frames short.

An MP3 that libsndfile writes carries a Xing/LAME frame with its exact length; cutting the
last frames off at a frame boundary leaves a valid stream that decodes shorter than that
header says, as real files do (encoder padding, a size-based estimate).
"""
import soundfile as sf

# Layer III bit rates (kbit/s) by bit-rate index: MPEG-1, and MPEG-2 / 2.5.
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}   # by version bits


def frame_offsets(data: bytes) -> list[int]:
    """Byte offsets of the Layer III frames of an MP3 (after an ID3v2 tag, if any)."""
    pos = 0
    if data[:3] == b"ID3":
        size = data[6:10]
        pos = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    offsets = []
    while pos + 4 <= len(data):
        head = int.from_bytes(data[pos:pos + 4], "big")
        if head >> 21 != 0x7FF or (head >> 17) & 3 != 1:         # no frame sync, or not Layer III
            break
        version, rate_idx, sr_idx, padding = (head >> 19) & 3, (head >> 12) & 15, (head >> 10) & 3, (head >> 9) & 1
        bitrate = _BITRATES[1 if version == 3 else 2][rate_idx] * 1000
        offsets.append(pos)
        pos += (144 if version == 3 else 72) * bitrate // _RATES[version][sr_idx] + padding
    return offsets


def cut_mp3(src, dst, frames: int):
    """Write ``dst``: the MP3 ``src`` without its last ``frames`` MPEG frames. Returns
    (frames its header declares, frames it decodes to)."""
    data = open(src, "rb").read()
    offsets = frame_offsets(data)
    assert len(offsets) > frames + 2, f"{src}: {len(offsets)} frames, cannot cut {frames}"
    with open(dst, "wb") as f:
        f.write(data[:offsets[-frames]])
    return sf.info(str(dst)).frames, len(sf.read(str(dst), dtype="float32")[0])
