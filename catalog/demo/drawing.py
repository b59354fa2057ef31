"""Drawing a demo product: one simple garment, shoe or bag shape per kind,
filled with a named colour and a pattern, on a light background. Real
product photos must never be committed, so the demo draws its own."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw

from catalog.demo.products import CHECKED, COLORS, POLKA_DOT, RGB, STRIPED, DemoProduct

WIDTH, HEIGHT = 640, 800
BACKGROUND: RGB = (236, 234, 229)
_SCALE = 2  # draw at twice the size and shrink, for smooth edges
_OUTLINE = 3

SOLE: RGB = (242, 240, 234)
DARK_SOLE: RGB = (48, 42, 38)
CORK: RGB = (198, 160, 112)
METAL: RGB = (196, 196, 200)
FABRIC = None  # `fill=FABRIC`: the product's colour and pattern

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _secondary(color: RGB) -> RGB:
    """The pattern's second colour: white, or black on white items."""
    return (30, 30, 30) if min(color) > 230 else (250, 250, 250)


def _ink(color: RGB) -> RGB:
    """Outline and stitching colour: a darker shade, or a lighter one on dark colours."""
    if sum(color) < 200:
        return tuple(min(255, c + 80) for c in color)  # type: ignore[return-value]
    return tuple(int(c * 0.55) for c in color)  # type: ignore[return-value]


def _fabric(color: RGB, pattern: str) -> Image.Image:
    """The product's cloth as a full canvas, cut out later by each shape's mask."""
    size = (WIDTH * _SCALE, HEIGHT * _SCALE)
    cloth = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(cloth)
    second = _secondary(color)
    s = _SCALE
    if pattern == STRIPED:
        for y in range(0, HEIGHT, 44):
            draw.rectangle((0, y * s, size[0], (y + 16) * s), fill=second)
    elif pattern == CHECKED:
        for row, y in enumerate(range(0, HEIGHT, 40)):
            for col, x in enumerate(range(0, WIDTH, 40)):
                if (row + col) % 2:
                    draw.rectangle((x * s, y * s, (x + 40) * s - 1, (y + 40) * s - 1), fill=second)
    elif pattern == POLKA_DOT:
        for row, y in enumerate(range(12, HEIGHT, 40)):
            offset = 20 if row % 2 else 0
            for x in range(12 + offset, WIDTH, 40):
                draw.ellipse(((x - 8) * s, (y - 8) * s, (x + 8) * s, (y + 8) * s), fill=second)
    return cloth


def _mirror(points: Sequence[Point]) -> list[Point]:
    """The same outline reflected about the vertical centre line."""
    return [(WIDTH - x, y) for x, y in reversed(points)]


class _Pen:
    """Draws shapes painter-style in 640x800 coordinates: each filled shape
    covers what was drawn before it and gets an outline in the ink colour.
    `fill=FABRIC` fills with the product's colour and pattern."""

    def __init__(self, color: RGB, pattern: str) -> None:
        size = (WIDTH * _SCALE, HEIGHT * _SCALE)
        self.image = Image.new("RGB", size, BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.cloth = _fabric(color, pattern)
        self.color = color
        self.ink = _ink(color)

    @staticmethod
    def _xy(points: Sequence[float]) -> list[float]:
        return [v * _SCALE for v in points]

    def _shape(self, method: str, xy: list[float], fill: RGB | None, outline: bool, **kw) -> None:
        if fill is FABRIC:
            mask = Image.new("L", self.image.size, 0)
            getattr(ImageDraw.Draw(mask), method)(xy, fill=255, **kw)
            self.image.paste(self.cloth, (0, 0), mask)
        else:
            getattr(self.draw, method)(xy, fill=fill, **kw)
        if outline:
            getattr(self.draw, method)(xy, outline=self.ink, width=_OUTLINE * _SCALE, **kw)

    def polygon(
        self, points: Sequence[Point], *, fill: RGB | None = FABRIC, outline: bool = True
    ) -> None:
        self._shape("polygon", self._xy([v for p in points for v in p]), fill, outline)

    def ellipse(self, box: Box, *, fill: RGB | None = FABRIC, outline: bool = True) -> None:
        self._shape("ellipse", self._xy(box), fill, outline)

    def rect(
        self, box: Box, *, radius: float = 0, fill: RGB | None = FABRIC, outline: bool = True
    ) -> None:
        self._shape("rounded_rectangle", self._xy(box), fill, outline, radius=radius * _SCALE)

    def chord(
        self, box: Box, start: float, end: float, *, fill: RGB | None = FABRIC, outline: bool = True
    ) -> None:
        self._shape("chord", self._xy(box), fill, outline, start=start, end=end)

    def line(self, points: Sequence[Point], *, width: float = 3, fill: RGB | None = None) -> None:
        xy = self._xy([v for p in points for v in p])
        self.draw.line(xy, fill=fill or self.ink, width=int(width * _SCALE), joint="curve")

    def arc(
        self, box: Box, start: float, end: float, *, width: float = 3, fill: RGB | None = None
    ) -> None:
        self.draw.arc(self._xy(box), start, end, fill=fill or self.ink, width=int(width * _SCALE))

    def dot(self, centre: Point, radius: float, *, fill: RGB | None = None) -> None:
        x, y = centre
        box = (x - radius, y - radius, x + radius, y + radius)
        self._shape("ellipse", self._xy(box), fill or self.ink, outline=False)

    def jpeg(self) -> bytes:
        out = io.BytesIO()
        self.image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS).save(
            out, format="JPEG", quality=90
        )
        return out.getvalue()


# Shared parts.


def _sleeves(pen: _Pen, left: Sequence[Point]) -> None:
    pen.polygon(left)
    pen.polygon(_mirror(left))


def _rib(pen: _Pen, box: Box, step: float = 10) -> None:
    """A ribbed band (cuff, hem, collar): the cloth with fine vertical lines."""
    pen.rect(box)
    x0, y0, x1, y1 = box
    x = x0 + step
    while x < x1 - 2:
        pen.line([(x, y0 + 3), (x, y1 - 3)], width=1.5)
        x += step


def _buttons(pen: _Pen, x: float, ys: Sequence[float], radius: float = 7) -> None:
    for y in ys:
        pen.dot((x, y), radius)


# One function per kind. Every shape covers the canvas centre, so the centre's
# colour is the product's colour.


def _draw_t_shirt(pen: _Pen) -> None:
    _sleeves(pen, [(210, 170), (112, 232), (160, 316), (214, 282)])
    body = [(210, 170), (268, 148), (290, 180), (320, 190), (350, 180), (372, 148), (430, 170)]
    pen.polygon([*body, (436, 660), (204, 660)])
    pen.line([(268, 150), (290, 184), (320, 195), (350, 184), (372, 150)], width=4)
    pen.line([(206, 640), (434, 640)], width=2)
    pen.line([(128, 258), (168, 304)], width=2)
    pen.line([(512, 258), (472, 304)], width=2)


def _draw_shirt(pen: _Pen) -> None:
    _sleeves(pen, [(206, 176), (138, 250), (98, 560), (150, 570), (178, 330), (208, 310)])
    pen.rect((92, 556, 154, 596), radius=6)  # cuffs
    pen.rect((486, 556, 548, 596), radius=6)
    pen.polygon(
        [
            (206, 176), (272, 150), (368, 150), (434, 176), (434, 640),
            (400, 676), (330, 660), (320, 668), (310, 660), (240, 676), (206, 640),
        ]
    )  # fmt: skip
    pen.polygon([(272, 150), (320, 158), (368, 150), (350, 170), (290, 170)])  # collar stand
    pen.polygon([(272, 150), (318, 206), (284, 226), (258, 166)])
    pen.polygon([(368, 150), (382, 166), (356, 226), (322, 206)])
    pen.line([(308, 206), (308, 664)], width=2)
    pen.line([(332, 206), (332, 664)], width=2)
    _buttons(pen, 320, [236, 306, 376, 446, 516, 586], radius=6)
    pen.rect((350, 250, 404, 312))  # chest pocket
    pen.line([(350, 262), (404, 262)], width=2)


def _draw_sweater(pen: _Pen) -> None:
    _sleeves(pen, [(196, 190), (150, 230), (112, 560), (168, 570), (200, 320)])
    _rib(pen, (104, 560, 172, 604))
    _rib(pen, (468, 560, 536, 604))
    pen.polygon(
        [(196, 190), (266, 160), (374, 160), (444, 190), (448, 620), (192, 620)]
    )  # fmt: skip
    _rib(pen, (192, 612, 448, 664))
    pen.chord((262, 130, 378, 224), 0, 180)  # ribbed neckline
    pen.chord((280, 140, 360, 206), 0, 180, fill=BACKGROUND)
    pen.line([(200, 200), (200, 600)], width=2)
    pen.line([(440, 200), (440, 600)], width=2)


def _draw_dress(pen: _Pen) -> None:
    pen.line([(262, 110), (258, 196)], width=6)  # straps
    pen.line([(378, 110), (382, 196)], width=6)
    pen.polygon(
        [(252, 190), (292, 206), (320, 226), (348, 206), (388, 190), (376, 350), (264, 350)]
    )  # fmt: skip
    pen.polygon(
        [
            (264, 346), (376, 346), (440, 520), (492, 700), (420, 716),
            (320, 722), (220, 716), (148, 700), (200, 520),
        ]
    )  # fmt: skip
    pen.line([(264, 350), (376, 350)], width=4)
    for x0, x1 in ((296, 262), (344, 378)):
        pen.line([(x0, 370), (x1, 700)], width=1.5)  # soft folds of the skirt


def _draw_jeans(pen: _Pen) -> None:
    pen.polygon(
        [(214, 160), (426, 160), (446, 712), (346, 712), (322, 420), (298, 712), (194, 712)]
    )  # fmt: skip
    pen.rect((212, 124, 428, 164))  # waistband
    for x in (236, 300, 340, 404):
        pen.rect((x - 5, 118, x + 5, 172), radius=2)  # belt loops
    pen.dot((320, 144), 7, fill=METAL)
    pen.line([(320, 164), (320, 360)], width=2)
    pen.line([(320, 300), (350, 300), (350, 170)], width=2)  # fly stitching
    pen.arc((184, 110, 290, 250), 0, 90, width=2)  # front pockets
    pen.arc((350, 110, 456, 250), 90, 180, width=2)
    pen.line([(200, 690), (298, 690)], width=2)
    pen.line([(346, 690), (444, 690)], width=2)


def _draw_skirt(pen: _Pen) -> None:
    pen.polygon([(230, 220), (410, 220), (486, 640), (320, 660), (154, 640)])
    pen.rect((226, 180, 414, 224))  # waistband
    pen.dot((396, 202), 7)
    for x0, x1 in ((270, 226), (320, 320), (370, 414)):
        pen.line([(x0, 230), (x1, 644)], width=1.5)  # pleats
    pen.line([(166, 624), (474, 624)], width=2)


def _draw_shorts(pen: _Pen) -> None:
    pen.polygon(
        [(198, 262), (442, 262), (470, 588), (336, 600), (320, 480), (304, 600), (170, 588)]
    )  # fmt: skip
    pen.rect((196, 220, 444, 266))  # waistband
    for x in (226, 300, 340, 414):
        pen.rect((x - 5, 214, x + 5, 274), radius=2)
    pen.line([(320, 266), (320, 420)], width=2)
    pen.line([(204, 300), (250, 266)], width=2)  # slant pockets
    pen.line([(436, 300), (390, 266)], width=2)
    pen.line([(174, 560), (306, 572)], width=2)
    pen.line([(334, 572), (466, 560)], width=2)


def _draw_jacket(pen: _Pen) -> None:
    _sleeves(pen, [(192, 170), (128, 240), (100, 540), (160, 552), (184, 330), (196, 310)])
    pen.rect((96, 530, 164, 572), radius=4)
    pen.rect((476, 530, 544, 572), radius=4)
    pen.polygon([(192, 170), (270, 144), (370, 144), (448, 170), (452, 570), (188, 570)])
    _rib(pen, (188, 560, 452, 606), step=14)  # waistband
    pen.polygon([(258, 132), (320, 150), (382, 132), (390, 160), (320, 176), (250, 160)])
    pen.polygon([(270, 144), (318, 212), (268, 240), (236, 158)])  # collar
    pen.polygon([(370, 144), (404, 158), (372, 240), (322, 212)])
    pen.line([(320, 212), (320, 606)], width=3)
    _buttons(pen, 338, [300, 380, 460, 540, 584], radius=6)
    for x in (220, 358):
        pen.rect((x, 268, x + 62, 330), radius=4)  # chest pockets
        pen.polygon([(x - 4, 260), (x + 66, 260), (x + 66, 286), (x + 31, 300), (x - 4, 286)])
    pen.line([(250, 330), (250, 560)], width=2)
    pen.line([(390, 330), (390, 560)], width=2)


def _draw_coat(pen: _Pen) -> None:
    _sleeves(pen, [(196, 156), (140, 220), (110, 600), (168, 612), (190, 320)])
    pen.polygon(
        [(196, 156), (272, 130), (368, 130), (444, 156), (470, 752), (170, 752)]
    )  # fmt: skip
    pen.line([(350, 300), (350, 752)], width=3)  # front edge of the wrap
    pen.polygon([(272, 130), (350, 300), (300, 330), (252, 250), (276, 236), (246, 170)])
    pen.polygon([(368, 130), (394, 170), (364, 236), (388, 250), (340, 330), (320, 300)])
    pen.rect((174, 430, 466, 466), radius=4)  # tie belt
    pen.polygon([(330, 460), (352, 460), (332, 560), (314, 556)])
    _buttons(pen, 290, [380, 520], radius=8)
    _buttons(pen, 390, [380, 520], radius=8)
    pen.line([(116, 570), (168, 578)], width=2)
    pen.line([(524, 570), (472, 578)], width=2)


def _draw_sneaker(pen: _Pen) -> None:
    upper = [
        (70, 520), (62, 470), (90, 430), (170, 404), (260, 372), (330, 336),
        (400, 302), (470, 296), (540, 300), (590, 330), (596, 520),
    ]  # fmt: skip
    pen.polygon(upper)
    pen.chord((60, 420, 200, 560), 90, 270, fill=SOLE)  # toe cap
    pen.polygon([(404, 306), (470, 300), (536, 306), (506, 330), (432, 332)], fill=BACKGROUND)
    pen.polygon([(530, 304), (590, 332), (594, 480), (536, 470)])  # heel counter
    pen.rect((46, 508, 606, 574), radius=26, fill=SOLE)
    pen.line([(60, 546), (592, 546)], width=2)
    for i in range(5):  # laces across the eyelet row, which rises to the ankle
        x = 250 + i * 30
        y = 386 - (x - 250) * 0.5
        pen.line([(x, y), (x + 30, y + 30)], width=5, fill=SOLE)
        pen.dot((x, y), 4)
        pen.dot((x + 30, y + 30), 4)
    pen.line([(180, 470), (300, 430), (430, 430), (530, 474)], width=2)


def _draw_boot(pen: _Pen) -> None:
    pen.polygon(
        [
            (250, 140), (470, 140), (478, 566), (92, 566), (76, 540), (80, 504),
            (104, 480), (150, 464), (214, 442), (250, 400),
        ]
    )  # fmt: skip
    pen.polygon(
        [(392, 180), (456, 180), (452, 420), (424, 470), (396, 420)],
        fill=_ink(pen.color),
    )  # elastic side panel
    pen.rect((454, 96, 492, 170), radius=10)  # pull tab
    pen.rect((70, 556, 490, 600), radius=14, fill=DARK_SOLE)
    pen.rect((382, 556, 490, 640), radius=6, fill=DARK_SOLE)  # heel block
    pen.line([(100, 520), (230, 500)], width=2)


def _draw_sandal(pen: _Pen) -> None:
    # Seen from above: a cork footbed under two wide buckled straps.
    pen.polygon(
        [
            (300, 110), (372, 118), (424, 170), (446, 280), (434, 420), (410, 540),
            (406, 640), (380, 700), (320, 720), (262, 700), (232, 630), (222, 520),
            (200, 400), (196, 260), (220, 160),
        ],
        fill=CORK,
    )  # fmt: skip
    pen.rect((170, 210, 470, 300), radius=26)
    pen.rect((170, 350, 470, 450), radius=26)
    for y in (255, 400):
        pen.rect((410, y - 26, 452, y + 26), radius=4, fill=METAL)
        pen.rect((418, y - 16, 444, y + 16), radius=2, fill=_ink(pen.color))
        pen.line([(430, y - 8), (466, y - 8)], width=4)


def _draw_tote_bag(pen: _Pen) -> None:
    handle = pen.ink
    pen.arc((236, 120, 404, 470), 180, 360, width=16, fill=handle)  # back handle
    pen.polygon([(160, 300), (480, 300), (512, 712), (128, 712)])
    pen.arc((220, 150, 420, 450), 180, 360, width=18, fill=handle)  # front handle
    pen.line([(162, 324), (478, 324)], width=2)
    for x in (228, 412):
        pen.rect((x - 16, 292, x + 16, 350), radius=4, fill=handle, outline=False)


def _draw_backpack(pen: _Pen) -> None:
    strap = pen.ink
    pen.rect((150, 220, 190, 620), radius=18, fill=strap)
    pen.rect((450, 220, 490, 620), radius=18, fill=strap)
    pen.arc((280, 100, 360, 200), 180, 360, width=12, fill=strap)  # carry handle
    pen.rect((170, 150, 470, 700), radius=110)
    pen.arc((200, 176, 440, 420), 200, 340, width=3)  # zip
    pen.rect((212, 470, 428, 672), radius=36)  # front pocket
    pen.line([(236, 500), (404, 500)], width=3)
    pen.rect((396, 492, 408, 526), radius=3, fill=METAL)  # zip pull


def _draw_cap(pen: _Pen) -> None:
    # Side view: crown dome facing right, with the brim sticking out.
    pen.polygon(
        [(380, 430), (470, 420), (560, 440), (616, 470), (600, 486), (520, 478), (400, 470)]
    )  # fmt: skip
    pen.chord((50, 200, 450, 700), 180, 360)
    pen.rect((50, 436, 450, 470), radius=6)  # band
    pen.line([(250, 206), (196, 260), (160, 340), (146, 436)], width=2)  # panel seams
    pen.line([(250, 206), (312, 270), (350, 350), (362, 436)], width=2)
    pen.dot((250, 206), 14)  # button on top
    pen.dot((196, 330), 5)  # eyelets
    pen.dot((316, 330), 5)


def _draw_scarf(pen: _Pen) -> None:
    # Hanging as if round a neck: a loop with two long fringed ends.
    pen.ellipse((190, 90, 450, 290))
    pen.ellipse((244, 128, 396, 236), fill=BACKGROUND)
    for x0, y0, x1, y1, dx in ((236, 200, 322, 660, -12), (312, 230, 400, 610, 14)):
        pen.polygon([(x0, y0), (x1, y0), (x1 + dx, y1), (x0 + dx, y1)])
        for i in range(9):
            x = x0 + dx + 6 + i * (x1 - x0 - 12) / 8
            pen.line([(x, y1), (x, y1 + 34)], width=3)
        pen.line([(x0 + dx + 4, y1 - 16), (x1 + dx - 4, y1 - 16)], width=2)


_DRAWERS: dict[str, Callable[[_Pen], None]] = {
    "t-shirt": _draw_t_shirt,
    "shirt": _draw_shirt,
    "sweater": _draw_sweater,
    "dress": _draw_dress,
    "jeans": _draw_jeans,
    "skirt": _draw_skirt,
    "shorts": _draw_shorts,
    "jacket": _draw_jacket,
    "coat": _draw_coat,
    "sneaker": _draw_sneaker,
    "boot": _draw_boot,
    "sandal": _draw_sandal,
    "tote bag": _draw_tote_bag,
    "backpack": _draw_backpack,
    "cap": _draw_cap,
    "scarf": _draw_scarf,
}


def draw_product_image(product: DemoProduct) -> bytes:
    """A 640x800 RGB JPEG of the product: its kind's shape in its colour and
    pattern. Depends only on kind, colour and pattern, so it is deterministic."""
    pen = _Pen(COLORS[product.color], product.pattern)
    _DRAWERS[product.kind](pen)
    return pen.jpeg()
