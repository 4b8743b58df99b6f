"""What makes a rendered training crop look like a real frame: the randomisations applied when a crop is loaded.

The rendered hands carry an anti-aliased matte (``alpha/``, synthetic set version 2), so each render is put
over a new background every time it is drawn, and everything after rendering (sleeves, jewellery, light,
shadows, the camera's defects) is redrawn per crop. Each group can be switched off (:class:`Realism`) to
measure what it buys on real frames (``benchmarks/perception.py``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from core_model.data.appearance import SKIN_TONES, sample_background
from core_model.perception.backgrounds import photo_backgrounds, photo_crop

BACKGROUND_BANK = 96  # procedural backgrounds drawn once per dataset (each costs ~20 ms)
BANK_SIDE = 256       # their side; resized to the crop when drawn


@dataclasses.dataclass(frozen=True)
class Realism:
    """Which randomisation groups are on. ``renders()`` is the synthetic set as rendered."""

    backgrounds: bool = True    # new background per crop: photographs and procedural textures
    distractors: bool = True    # skin-coloured faces / arms / blobs behind the hands
    sleeves: bool = True        # the forearm stump dressed in a sleeve; watches and rings
    skin: bool = True           # skin tone, saturation and gloss of the hands
    light: bool = True          # coloured light, hard shadows, backlight, low light, exposure, vignette
    camera: bool = True         # defocus and motion blur, low resolution, sensor noise, JPEG, white balance

    @classmethod
    def renders(cls) -> Realism:
        return cls(False, False, False, False, False, False)

    @classmethod
    def parse(cls, text: str) -> Realism:
        """``all``, ``renders``, or ``all-GROUP[-GROUP...]`` (e.g. ``all-camera``) / ``renders+GROUP...``."""
        groups = [f.name for f in dataclasses.fields(cls)]
        if text in ("all", "renders"):
            return cls() if text == "all" else cls.renders()
        for base, sign in (("all-", False), ("renders+", True)):
            if text.startswith(base):
                names = text[len(base):].split("-" if not sign else "+")
                bad = [n for n in names if n not in groups]
                if bad:
                    break
                start = cls() if not sign else cls.renders()
                return dataclasses.replace(start, **{n: sign for n in names})
        raise ValueError(f"realism: expected 'all', 'renders', 'all-GROUP-...' or 'renders+GROUP+...' with groups "
                         f"{groups}, got {text!r}")


class Randomiser:
    """Applies :class:`Realism` to rendered 256-px frames. Holds the background bank (built lazily, once)."""

    def __init__(self, realism: Realism, seed: int = 0) -> None:
        self.realism = realism
        self.seed = seed
        self._procedural: list[np.ndarray] | None = None

    def _bank(self) -> list[np.ndarray]:
        if self._procedural is None:
            rng = np.random.default_rng(self.seed + 12345)
            self._procedural = [sample_background(rng, BANK_SIDE).astype(np.float32) for _ in range(BACKGROUND_BANK)]
        return self._procedural

    # -------------------------------------------------------------------------------------- before the crop

    def dress(self, rng: np.random.Generator, rgb: np.ndarray, labels: np.ndarray,
              keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """On the rendered frame: rgb [S, S, 3] uint8, labels [S, S] (0-4), keypoints [2, 21, 2] -> (float image in
        [0, 1], labels) with the skin retoned and the forearms dressed in sleeves and watches."""
        image = rgb.astype(np.float32) / 255.0
        labels = labels.copy()
        if self.realism.skin:
            image = self._skin(rng, image, labels)
        if self.realism.sleeves:
            image, labels = self._sleeves(rng, image, labels, keypoints)
        return image, labels

    def compose(self, rng: np.random.Generator, image: np.ndarray, alpha: np.ndarray, cover: np.ndarray,
                keypoints: np.ndarray) -> np.ndarray:
        """On the crop: image [s, s, 3] float (the render warped, black past its edge), alpha [s, s] in [0, 1]
        (the hands' matte), cover [s, s] (1 where the render reaches) -> the hands over a new background (or the
        rendered one, past whose edge a procedural texture is put), with their shadow, distractors, rings."""
        size = image.shape[0]
        a = alpha[..., None]
        if self.realism.backgrounds or self.realism.distractors:
            back = self.background(rng, size) if self.realism.backgrounds else \
                image * (1 - a) / np.maximum(1 - a, 1e-3) * cover[..., None] + \
                self.background(rng, size) * (1 - cover[..., None])
            if self.realism.distractors and rng.uniform() < 0.5:
                back = self._distractors(rng, back)
            shift = tuple(int(v) for v in rng.integers(-size // 12, size // 12 + 1, 2))
            shadow = cv2.GaussianBlur(np.roll(alpha, shift, (0, 1)), (0, 0), size / rng.uniform(20, 60))
            back = back * (1 - rng.uniform(0.1, 0.5) * shadow)[..., None]
            image = image * a + back * (1 - a)
        else:
            image = image + self.background(rng, size) * (1 - cover[..., None])
        if self.realism.sleeves and rng.uniform() < 0.25:
            image = self._ring(rng, np.ascontiguousarray(image), keypoints)
        return np.clip(image, 0, 1)

    def background(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """[size, size, 3] float: a photograph's random view (when backgrounds are on) or a procedural texture."""
        photos = photo_backgrounds() if self.realism.backgrounds else ()
        if photos and rng.uniform() < 0.6:
            return photo_crop(rng, photos[rng.integers(len(photos))].image, size)
        bank = self._bank()
        back = bank[rng.integers(len(bank))]
        back = back[:, ::-1] if rng.uniform() < 0.5 else back
        return back if size == BANK_SIDE else cv2.resize(back, (size, size), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _skin_tone(rng: np.random.Generator) -> np.ndarray:
        i = rng.integers(len(SKIN_TONES) - 1)
        w = rng.uniform()
        return (SKIN_TONES[i] * (1 - w) + SKIN_TONES[i + 1] * w).astype(np.float32)

    def _distractors(self, rng: np.random.Generator, back: np.ndarray) -> np.ndarray:
        """Skin-coloured shapes behind the hands: a face-like ellipse, an arm-like band, blobs. The hardest
        negatives of a skin-colour cue."""
        size = back.shape[0]
        out = back.copy()
        for _ in range(rng.integers(1, 4)):
            tone = self._skin_tone(rng) * rng.uniform(0.7, 1.1)
            mask = np.zeros((size, size), np.uint8)
            centre = tuple(int(v) for v in rng.uniform(0, size, 2))
            if rng.uniform() < 0.5:
                axes = (int(size * rng.uniform(0.12, 0.35)), int(size * rng.uniform(0.18, 0.45)))
                cv2.ellipse(mask, centre, axes, rng.uniform(-30, 30), 0, 360, 1, -1, cv2.LINE_AA)
            else:
                end = tuple(int(v) for v in rng.uniform(-size * 0.2, size * 1.2, 2))
                cv2.line(mask, centre, end, 1, int(size * rng.uniform(0.08, 0.2)), cv2.LINE_AA)
            soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
            shade = 0.75 + 0.35 * cv2.GaussianBlur(rng.uniform(0, 1, (size, size)).astype(np.float32), (0, 0),
                                                    size / 10)[..., None]
            out = out * (1 - soft) + tone * shade * soft
        return out

    @staticmethod
    def _skin(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Shift the hands' (and forearms') tone: gain per channel, saturation, a gloss highlight."""
        skin = (labels > 0)[..., None].astype(np.float32)
        gain = rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
        grey = image.mean(-1, keepdims=True)
        sat = rng.uniform(0.7, 1.3)
        toned = np.clip((grey + (image - grey) * sat) * gain, 0, 1)
        if rng.uniform() < 0.3:  # wet or oily skin: sharp specular blotches
            size = image.shape[0]
            spots = cv2.GaussianBlur(rng.uniform(0, 1, (size, size)).astype(np.float32), (0, 0), size / 80)
            spots = np.clip((spots - np.quantile(spots, 0.93)) * 20, 0, 1)[..., None]
            toned = np.clip(toned + spots * rng.uniform(0.2, 0.5), 0, 1)
        return image * (1 - skin) + toned * skin

    def _sleeves(self, rng: np.random.Generator, image: np.ndarray, labels: np.ndarray,
                 keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dress each forearm (labels 3/4) in a sleeve from a random distance above the wrist, and sometimes a
        watch or bracelet at the wrist (background in the labels: not hand)."""
        size = image.shape[0]
        hand = np.isin(labels, (1, 2)).astype(np.uint8)
        dist = cv2.distanceTransform(1 - hand, cv2.DIST_L2, 3)
        for h in range(2):
            forearm = labels == 3 + h
            if not forearm.any():
                continue
            if rng.uniform() < 0.6:
                start = rng.uniform(0.0, 0.25) * size
                sleeve = forearm & (dist > start)
                colour = rng.uniform(0, 1, 3).astype(np.float32) * rng.uniform(0.2, 1.0)
                weave = cv2.GaussianBlur(rng.uniform(0, 1, (size, size)).astype(np.float32), (0, 0), 2)
                shading = image.mean(-1)[sleeve][:, None] / max(image.mean(-1)[forearm].mean(), 1e-3)
                image[sleeve] = np.clip(colour * (0.6 + 0.4 * shading) * (0.85 + 0.3 * weave[sleeve][:, None]), 0, 1)
            if rng.uniform() < 0.2 and np.isfinite(keypoints[h]).all():
                wrist, middle = keypoints[h, 0], keypoints[h, 9]
                axis = (wrist - middle) / max(np.linalg.norm(wrist - middle), 1e-6)
                centre = wrist + axis * np.linalg.norm(wrist - middle) * rng.uniform(0.15, 0.35)
                half = np.array([-axis[1], axis[0]]) * np.linalg.norm(wrist - middle) * 0.55
                band = np.zeros((size, size), np.uint8)
                thick = max(2, int(np.linalg.norm(wrist - middle) * rng.uniform(0.12, 0.3)))
                cv2.line(band, tuple(np.round(centre - half).astype(int)), tuple(np.round(centre + half).astype(int)),
                         1, thick)
                band = band.astype(bool) & (labels > 0)
                metal = rng.choice([np.array([0.8, 0.8, 0.82]), np.array([0.85, 0.7, 0.35]),
                                    np.array([0.08, 0.08, 0.09]), rng.uniform(0, 1, 3)])
                image[band] = np.clip(metal * rng.uniform(0.6, 1.1), 0, 1)
                labels[band] = 0
        return image, labels

    @staticmethod
    def _ring(rng: np.random.Generator, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        h, finger = rng.integers(2), rng.integers(1, 5)
        base = 1 + 4 * finger
        a, b = keypoints[h, base], keypoints[h, base + 1]
        if not np.isfinite([a, b]).all():
            return image
        centre = a + (b - a) * rng.uniform(0.3, 0.5)
        bone = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        half = np.array([-bone[1], bone[0]]) * np.linalg.norm(b - a) * 0.28
        colour = rng.choice([np.array([0.85, 0.72, 0.35]), np.array([0.82, 0.82, 0.85])])
        cv2.line(image, tuple(np.round(centre - half).astype(int)), tuple(np.round(centre + half).astype(int)),
                 tuple(float(c) for c in colour), max(1, int(np.linalg.norm(b - a) * 0.15)), cv2.LINE_AA)
        return image

    # -------------------------------------------------------------------------------------- after the crop

    def photometric(self, rng: np.random.Generator, image: np.ndarray, hands: np.ndarray) -> np.ndarray:
        """image [s, s, 3] float in [0, 1] (the crop), hands [s, s] bool -> uint8: light, then the camera."""
        size = image.shape[0]
        if self.realism.light:
            image = image * rng.uniform(0.75, 1.2, 3).astype(np.float32) if rng.uniform() < 0.6 else image
            u = rng.uniform()
            if u < 0.3:  # a hard shadow: a random polygon, sharp or slightly soft
                mask = np.zeros((size, size), np.float32)
                pts = rng.uniform(-0.3, 1.3, (rng.integers(3, 6), 2)) * size
                cv2.fillPoly(mask, [pts.astype(np.int32)], 1.0)
                mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.5, 4))
                image = image * (1 - rng.uniform(0.3, 0.7) * mask)[..., None]
            elif u < 0.4:  # backlight: a bright background, hands in shade
                h = hands[..., None].astype(np.float32)
                image = image * (1 - h) * rng.uniform(1.2, 1.8) + image * h * rng.uniform(0.35, 0.7)
            elif u < 0.55:  # a lamp from one side
                yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
                angle = rng.uniform(0, 2 * np.pi)
                ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5))
                image = image * (1 + rng.uniform(0.3, 0.8) * ramp)[..., None]
            if rng.uniform() < 0.15:  # low light: dark, then the gain's noise
                image = image * rng.uniform(0.15, 0.4)
                image = image / max(float(np.quantile(image, 0.98)), 0.05) * rng.uniform(0.5, 0.9)
                image = image + rng.normal(0, rng.uniform(0.03, 0.07), image.shape).astype(np.float32)
            image = image * rng.uniform(0.7, 1.35)  # exposure
            if rng.uniform() < 0.3:
                yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
                image = image * (1 - rng.uniform(0.2, 0.6) * (xx ** 2 + yy ** 2) * 2)[..., None]
        if self.realism.camera:
            if rng.uniform() < 0.3:
                image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 2.0))
            if rng.uniform() < 0.25:
                length = int(rng.integers(3, 10))
                kernel = np.zeros((length, length), np.float32)
                kernel[length // 2] = 1
                kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                                                        rng.uniform(0, 180), 1.0), (length, length))
                image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
            if rng.uniform() < 0.25:
                small = max(24, int(size / rng.uniform(1.5, 4)))
                image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                                   interpolation=cv2.INTER_LINEAR)
            image = image * rng.uniform(0.9, 1.1, 3).astype(np.float32)  # white balance
            gamma = rng.uniform(0.8, 1.25)
            image = np.clip(image, 0, 1) ** gamma
            image = image + rng.normal(0, rng.uniform(0, 0.03), image.shape).astype(np.float32)
        out = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self.realism.camera and rng.uniform() < 0.5:
            _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return out
