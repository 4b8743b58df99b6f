"""Shared fixtures. Tests never see a user's own MANO import: the MANO directory points into a temp folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_mano_dir(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTERHAND_MANO_DIR", str(tmp_path_factory.mktemp("mano")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def openhand():
    from core_model.handmodel.registry import load_hand_model

    return load_hand_model("openhand")
