"""HDR10 static metadata (mastering display, content light level) as encoder options."""
from __future__ import annotations

import logging
import struct
from fractions import Fraction

from .probe import SourceVideo

log = logging.getLogger("idsa_plugin")

HDR_CODECS = ("libx265", "libsvtav1")


def _mastering_display(codec: str, mastering: bytes) -> str | None:
    """AVMasteringDisplayMetadata as libx265's ``master-display`` or SVT-AV1's ``mastering-display``."""
    v = struct.unpack("<22i", mastering[:88])
    if not (v[20] and v[21]):  # has_primaries, has_luminance
        return None
    r = [Fraction(v[2 * i], v[2 * i + 1] or 1) for i in range(10)]  # R, G, B, white point (x, y); min, max luminance
    if codec == "libx265":
        xy = [round(c * 50000) for c in r[:8]]
        return (f"master-display=G({xy[2]},{xy[3]})B({xy[4]},{xy[5]})R({xy[0]},{xy[1]})WP({xy[6]},{xy[7]})"
                f"L({round(r[9] * 10000)},{round(r[8] * 10000)})")
    f = [f"{float(c):.4f}" for c in r[:8]]
    return f"mastering-display=G({f[2]},{f[3]})B({f[4]},{f[5]})R({f[0]},{f[1]})WP({f[6]},{f[7]})L({float(r[9]):.4f},{float(r[8]):.4f})"


def hdr_options(codec: str, source: SourceVideo) -> dict[str, str]:
    """Encoder options that write the source's HDR10 static metadata, where the encoder can."""
    if not (source.mastering or source.light):
        return {}
    if codec not in HDR_CODECS:
        log.warning("%s cannot write HDR10 mastering-display/content-light metadata: not carried (use libx265 or libsvtav1)", codec)
        return {}
    params = []
    if source.mastering and (display := _mastering_display(codec, source.mastering)):
        params.append(display)
    if source.light:
        cll, fall = struct.unpack("<2I", source.light[:8])
        params.append(f"max-cll={cll},{fall}" if codec == "libx265" else f"content-light={cll},{fall}")
    key = "x265-params" if codec == "libx265" else "svtav1-params"
    return {key: ":".join(params)}
