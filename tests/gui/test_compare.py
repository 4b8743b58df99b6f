"""Results compared in the 3D panel and the camera that follows the hands, checked on the rendered pixels: two to
four results checked in the Results list get a view each (named, their penetration in red), with linked cameras
each centred on its own hands; "follow hands" keeps both hands in view while they cross the frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gui.pixels import hand_pixels, red_pixels
from PySide6 import QtCore

from core_model.results import load_result

TOUCHING, APART = 5, 1  # files["a"]'s hands interpenetrate on frame 5, not on frame 1


def shot(view) -> np.ndarray:
    return view.plotter.screenshot(return_img=True)[..., :3]


def hand_mask(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(int)
    return (rgb[..., 2] > rgb[..., 0] + 40) | ((rgb[..., 0] > rgb[..., 2] + 60) & (rgb[..., 1] > rgb[..., 2] + 20))


def uncut(image: np.ndarray) -> bool:
    """Hands drawn, and no hand pixel on the view's border (none cut off)."""
    edge = np.zeros(image.shape[:2], bool)
    edge[:3], edge[-3:], edge[:, :3], edge[:, -3:] = True, True, True, True
    mask = hand_mask(image)
    return bool(mask.any() and not (mask & edge).any())


def both_hands_inside(image: np.ndarray) -> bool:
    """Both hands' colours drawn, none cut off by the view's border."""
    return min(hand_pixels(image)) > 0.002 and uncut(image)


def assert_linked(view, other) -> None:
    """``view``'s camera is ``other``'s moved: the same direction, distance, up and angle."""
    a, b = view.plotter.camera, other.plotter.camera
    np.testing.assert_allclose(np.subtract(a.position, a.focal_point), np.subtract(b.position, b.focal_point),
                               atol=1e-9)
    np.testing.assert_allclose([*a.up, a.view_angle], [*b.up, b.view_angle], atol=1e-9)


def check(scene, *names: str) -> None:
    """Check exactly ``names`` in the 3D panel's Results list, one click each, as the user would."""
    items = {scene.results_list.list.item(i).text(): scene.results_list.list.item(i)
             for i in range(scene.results_list.list.count())}
    for name in names:  # first the new ones: the list keeps at least one checked
        items[name].setCheckState(QtCore.Qt.CheckState.Checked)
    for name, item in items.items():
        if name not in names and item.checkState() == QtCore.Qt.CheckState.Checked:
            item.setCheckState(QtCore.Qt.CheckState.Unchecked)
    assert [s.name for s in scene.shown] == [n for n in items if n in names]


@pytest.fixture(scope="module")
def apart(tmp_path_factory, openhand, files):
    """apart.npz: files["a"]'s clip with its hands 0.25 m apart on every frame (never penetrating), no ground
    truth."""
    from gui.factory import make_result

    from core_model.results import save_result

    path = tmp_path_factory.mktemp("compare") / "apart.npz"
    save_result(make_result(openhand, touching=range(0), gt=False, source=str(files["clip"])), path)
    return path


@pytest.fixture(scope="module")
def crossing(tmp_path_factory, openhand, files):
    """crossing.npz, no ground truth: the pair moves 1.2 m across the camera's view (from 0.6 m left of its axis
    to 0.6 m right, 0.9 m away) while the hands swap sides, the right one passing 0.1 m in front of the left."""
    from gui.factory import make_result

    from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
    from core_model.results import save_result

    result = make_result(openhand, touching=range(0), gt=False, source=str(files["clip"]))
    n = result.num_frames
    u = np.linspace(0.0, 1.0, n)
    pair, side = np.linspace(-0.6, 0.6, n), np.linspace(0.15, -0.15, n)  # right hand at pair - side
    move = np.zeros((n, 2, 3), np.float32)
    move[:, 0, 0] = pair - side + 0.125  # make_result puts the right hand at x = -0.125, the left at +0.125
    move[:, 1, 0] = pair + side - 0.125
    move[:, 0, 2] = -0.1 * np.sin(np.pi * u)
    vertices = result.vertices + move[:, :, None]
    found = detect_interpenetration(vertices, HandMeshes.from_model(openhand))
    result = dataclasses.replace(result, vertices=vertices, keypoints=result.keypoints + move[:, :, None],
                                 transl=result.transl + move, inside=np.asarray(found.inside),
                                 depth=np.asarray(found.depth, np.float32))
    path = tmp_path_factory.mktemp("crossing") / "crossing.npz"
    save_result(result, path)
    return path


def test_two_results_side_by_side_each_in_its_view(window, files, apart, qtbot):
    scene = window.panels["scene"]
    window.open_path(files["a"])
    assert not scene.results_list.isEnabled()  # one result: nothing to choose
    window.open_path(apart)
    assert scene.results_list.isEnabled() and [s.name for s in scene.shown] == ["a"] and not scene.comparing
    check(scene, "a", "apart")
    assert scene.comparing and scene.results_list.text() == "Results: 2 of 2"
    assert scene.main.isVisible() and scene.second.isVisible() and not scene.link.isEnabled()
    assert abs(scene.main.width() - scene.second.width()) <= 2  # equal halves
    window.session.set_frame(TOUCHING)
    qtbot.wait(30)
    assert_linked(scene.second, scene.main)
    a_view, apart_view = shot(scene.main), shot(scene.second)
    # Two distinct hand pairs, one per view, each in the hands' colours and wholly inside its view: a's hands
    # overlap on this frame, apart's are 0.25 m apart, so they spread over a wider part of their (equally far) view.
    assert both_hands_inside(a_view) and both_hands_inside(apart_view)
    width = [np.ptp(np.nonzero(hand_mask(im).any(0))[0]) for im in (a_view, apart_view)]
    assert width[1] > 1.3 * width[0], width
    # Red where the result penetrates, and only there.
    inside = int(load_result(files["a"]).inside[TOUCHING].sum())
    assert red_pixels(a_view) > 30 and red_pixels(apart_view) == 0
    assert scene.main.label_text == f"a\nframe {TOUCHING}: {inside} penetrating vertices"
    assert scene.second.label_text == f"apart\nframe {TOUCHING}: 0 penetrating vertices"
    window.session.set_frame(APART)
    qtbot.wait(30)
    assert red_pixels(shot(scene.main)) == 0 and red_pixels(shot(scene.second)) == 0
    image = scene.image()  # what the screenshot export saves: both views side by side
    assert image.shape[1] == scene.main.view.render_image().shape[1] + scene.second.view.render_image().shape[1]

    check(scene, "apart")  # one result again: the main and second views, linked as before, show it
    assert not scene.comparing and scene.link.isEnabled()
    assert scene.main.label_text == scene.second.label_text == f"apart\nframe {APART}: 0 penetrating vertices"
    assert not np.allclose(scene.main.plotter.camera.position, scene.second.plotter.camera.position)


def test_four_results_in_two_rows_with_linked_cameras(window, files, apart, qtbot, tmp_path, openhand):
    from gui.factory import make_result

    from core_model.results import save_result

    refined = tmp_path / "r.npz"
    save_result(make_result(openhand, source=str(files["clip"]), refined_gap=0.2), refined)
    for path in (files["a"], files["b"], refined, apart):
        window.open_path(path)
    scene = window.panels["scene"]
    items = [scene.results_list.list.item(i) for i in range(scene.results_list.list.count())]
    assert [item.text() for item in items] == ["a", "b", "r", "r (refined)", "apart"]
    check(scene, "a", "b", "r", "r (refined)")
    assert not items[4].flags() & QtCore.Qt.ItemFlag.ItemIsEnabled  # four at most: the fifth is greyed out
    views = scene.shown_views()
    assert len(views) == 4 and all(view.isVisible() for view in views) and scene.lower.isVisible()
    window.session.set_frame(TOUCHING)
    qtbot.wait(50)
    for view, name in zip(views, ["a", "b", "r", "r (refined)"]):
        assert view.label_text.startswith(f"{name}\n")
        assert both_hands_inside(shot(view)), name
    reds = [red_pixels(shot(view)) for view in views]
    assert reds[0] > 0 and reds[2] > 0 and reds[3] == 0, reds  # r's refinement moved its hands apart
    views[2].plotter.camera.azimuth = 40  # turning one view turns all
    views[2].view.interactor.InvokeEvent("InteractionEvent")
    for view in views:
        assert_linked(view, views[2])
    image = scene.image()
    assert image.shape[0] > 1.5 * views[0].view.render_image().shape[0]  # two rows

    check(scene, "a")
    assert not scene.comparing and not scene.lower.isVisible() and not views[2].isVisible()


def test_followed_camera_keeps_crossing_hands_in_view(window, files, crossing, qtbot):
    scene = window.panels["scene"]
    window.open_path(files["a"])
    assert not scene.follow.isChecked()  # ground truth: a still camera
    window.close_all()
    window.open_path(crossing)
    assert scene.follow.isChecked()  # none: the camera follows the hands
    n = window.session.num_frames
    focal = []
    for frame in range(n):
        window.session.set_frame(frame)
        qtbot.wait(20)
        assert both_hands_inside(shot(scene.main)), frame
        assert uncut(shot(scene.second)), frame  # from the side (linked, 90 degrees), one hand may hide the other
        focal.append(scene.main.plotter.camera.focal_point)
    steps = np.diff(np.array(focal)[:, 0])
    assert (steps > 0).all()  # the camera went with the pair, from left to right, never back

    # The same clip without following: the camera fitted on the first frame loses the hands on the way.
    scene.follow.setChecked(False)
    window.session.set_frame(0)
    scene.apply_preset("camera")
    qtbot.wait(20)
    lost = []
    for frame in range(n):
        window.session.set_frame(frame)
        qtbot.wait(20)
        lost.append(not both_hands_inside(shot(scene.main)))
    assert any(lost)

    # Following keeps the zoom the user gave it.
    scene.follow.setChecked(True)
    window.session.set_frame(3)
    fitted = scene.main.plotter.camera.distance
    scene.main.plotter.renderer.GetActiveCamera().Dolly(1.5)  # closer
    scene.main.view.interactor.InvokeEvent("InteractionEvent")
    window.session.set_frame(4)
    scene.follow.setChecked(False)
    window.session.set_frame(3)
    scene.follow.setChecked(True)  # anew: the fitted distance
    window.session.set_frame(4)
    refitted = scene.main.plotter.camera.distance
    assert refitted == pytest.approx(fitted, rel=0.15)
    scene.main.plotter.renderer.GetActiveCamera().Dolly(1.5)
    scene.main.view.interactor.InvokeEvent("InteractionEvent")
    zoomed = scene.main.plotter.camera.distance
    window.session.set_frame(5)
    assert scene.main.plotter.camera.distance < 0.8 * refitted and zoomed < 0.8 * refitted


def test_comparison_with_following_centres_each_view_on_its_hands(window, files, crossing, apart, qtbot):
    scene = window.panels["scene"]
    window.open_path(crossing)
    window.open_path(apart)
    check(scene, "crossing", "apart")
    assert scene.follow.isChecked()
    for frame in (0, 6, 11):
        window.session.set_frame(frame)
        qtbot.wait(30)
        assert_linked(scene.second, scene.main)
        for view in (scene.main, scene.second):
            assert both_hands_inside(shot(view)), (frame, view.label_text)


def test_workspace_keeps_the_compared_results_and_following(window, files, apart, tmp_path, qtbot):
    scene = window.panels["scene"]
    window.open_path(files["a"])
    window.open_path(apart)
    check(scene, "a", "apart")
    scene.follow.setChecked(True)
    path = window.workspaces.save(tmp_path / "work.json")
    window.close_all()
    assert not scene.comparing and scene.shown == []
    assert window.open_path(path)
    qtbot.wait(30)
    assert [s.name for s in scene.shown] == ["a", "apart"] and scene.comparing and scene.follow.isChecked()


def test_a_shorter_result_shows_nothing_past_its_end(window, files, openhand, tmp_path, qtbot):
    from gui.factory import make_result

    from core_model.results import save_result

    short = tmp_path / "short.npz"
    save_result(make_result(openhand, n=8, gt=False, source=str(files["clip"])), short)
    window.open_path(files["a"])
    window.open_path(short)
    scene = window.panels["scene"]
    check(scene, "a", "short")
    scene.follow.setChecked(True)
    window.session.set_frame(10)
    qtbot.wait(30)
    assert scene.second.label_text == "short\nframe 10: past its 8 frames"
    assert both_hands_inside(shot(scene.main)) and not hand_mask(shot(scene.second)).any()


def test_linked_views_draw_from_their_cameras_pose(window, files, tmp_path, qtbot):
    """After a linked copy of one view's camera into another, what each view draws is what it draws once its
    camera is marked changed: no view keeps drawing (projection, headlight) from its camera's last pose."""
    import shutil

    copy = tmp_path / "a copy.npz"
    shutil.copyfile(files["a"], copy)
    window.open_path(files["a"])
    window.open_path(copy)
    scene = window.panels["scene"]
    check(scene, "a", "a copy")  # the same hands: the views' cameras are copies, not moved

    def stale(view) -> float:
        drawn = view.view.render_image().astype(int)  # as the widget paints it
        view.plotter.renderer.GetActiveCamera().Modified()
        return float(np.abs(drawn - view.view.render_image()).max())

    scene.follow.setChecked(True)  # the cameras move with every frame, then stay for the presets
    for frame in range(TOUCHING + 1):
        window.session.set_frame(frame)
        qtbot.wait(10)
    scene.follow.setChecked(False)
    for preset in ("side", "top", "camera", "front"):
        scene.apply_preset(preset)
        assert stale(scene.main) == 0 and stale(scene.second) == 0, preset
    scene.second.plotter.camera.azimuth = 25
    scene.second.view.interactor.InvokeEvent("InteractionEvent")
    assert stale(scene.main) == 0 and stale(scene.second) == 0
