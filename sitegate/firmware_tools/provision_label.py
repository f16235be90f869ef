"""The cabinet-door label: gateway id, broker, and a QR code holding the gateway id and the
claim token (``sitegate:claim?gateway=ID&token=TOKEN``), as PNG and PDF (A7 landscape,
300 dpi, the same raster in both).

Made on the installer's machine, never on the box: ``pip install 'sitegate[label]'``
(segno for the QR code: pure Python, well kept; Pillow draws the text and writes both
files). The claim token is one-time: once the gateway has enrolled, the label's token is
spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

DPI = 300
SIZE_MM = (105, 74)  # A7 landscape


class LabelError(Exception):
    """The label cannot be made (its libraries are missing)."""


def qr_text(gateway_id: str, token: str) -> str:
    return "sitegate:claim?" + urlencode({"gateway": gateway_id, "token": token})


def _libs() -> tuple[Any, Any, Any, Any]:
    try:
        import segno
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise LabelError(f"the label needs {exc.name}: pip install 'sitegate[label]'") from None
    return segno, Image, ImageDraw, ImageFont


def make_label(gateway_id: str, token: str, broker: str, out_dir: Path) -> list[Path]:
    """label.png and label.pdf in ``out_dir``."""
    segno, image_mod, draw_mod, font_mod = _libs()
    px = tuple(round(mm / 25.4 * DPI) for mm in SIZE_MM)
    img = image_mod.new("L", px, 255)
    draw = draw_mod.Draw(img)
    margin = round(4 / 25.4 * DPI)
    qr_side = px[1] - 2 * margin
    qr = segno.make(qr_text(gateway_id, token), error="m", micro=False)
    scale = max(1, qr_side // qr.symbol_size(border=2)[0])
    qr_img = _qr_image(qr, scale, image_mod)
    img.paste(qr_img, (margin, (px[1] - qr_img.size[1]) // 2))
    x = margin * 2 + qr_img.size[0]
    big, small = font_mod.load_default(size=44), font_mod.load_default(size=28)
    y = margin
    for text, font in (("sitegate gateway", small), (gateway_id, big), ("", small),
                       (f"broker: {broker}", small), ("claim token (one-time):", small),
                       *((part, small) for part in _wrap(token, 18))):
        draw.text((x, y), text, fill=0, font=font)
        y += font.size + 14
    png, pdf = out_dir / "label.png", out_dir / "label.pdf"
    img.save(png, dpi=(DPI, DPI))
    img.convert("RGB").save(pdf, "PDF", resolution=DPI, title=f"sitegate {gateway_id}")
    return [png, pdf]


def _qr_image(qr: Any, scale: int, image_mod: Any) -> Any:
    """The QR matrix drawn module by module (no segno image plugin needed)."""
    rows = list(qr.matrix_iter(scale=scale, border=2))
    img = image_mod.new("L", (len(rows[0]), len(rows)), 255)
    img.putdata([0 if dark else 255 for row in rows for dark in row])
    return img


def _wrap(text: str, width: int) -> list[str]:
    return [text[i:i + width] for i in range(0, len(text), width)]
