"""The ``keras-jepa`` command: help for every option, one error style for every subcommand
(``error: <message>`` on stderr, exit status 2; ``--debug`` re-raises), the ``demo`` and
``convert`` options, ``presets``, and ``pretrain``'s refusal to resume a run with other
arguments (``--overwrite`` to start fresh)."""

import argparse
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_jepa import cli


def _actions(parser, path=("keras-jepa",)):
    """``(command path, action)`` for every option and positional of ``parser`` and of all
    its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), helps.get(name)  # the subcommand's own help line
                yield from _actions(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_of_every_subcommand_has_help():
    found = list(_actions(cli._parser()))
    missing = []
    for path, action in found:
        text = action if isinstance(action, (str, type(None))) else action.help
        if not text or not str(text).strip() or text == argparse.SUPPRESS:
            name = "/".join(getattr(action, "option_strings", None) or [getattr(
                action, "dest", "(subcommand)")])
            missing.append(f"{' '.join(path)} {name}")
    assert not missing, "options without help text:\n" + "\n".join(missing)
    # The walk really reaches the subcommands' options (not a vacuous pass).
    options = {(p[-1], o) for p, a in found if not isinstance(a, (str, type(None)))
               for o in a.option_strings}
    for expected in [("pretrain", "--steps-per-epoch"), ("pretrain", "--overwrite"),
                     ("intphys", "--stride"), ("xrm", "--num-steps"),
                     ("evaluate", "--knn-k"), ("train-llip", "--mixing-heads"),
                     ("demo", "--depth"), ("convert", "--allow-missing"),
                     ("keras-jepa", "--debug"), ("pretrain", "--debug"),
                     ("train-vedit", "--max-length")]:
        assert expected in options, expected


def test_application_parsers_have_help_too():
    from keras_jepa.programs import pretrain
    from keras_jepa.programs.runner import add_debug_argument
    from keras_jepa.programs.xrm import build_parser

    parser = add_debug_argument(pretrain.add_arguments(argparse.ArgumentParser()))
    for p in (parser, build_parser()):
        for _, action in _actions(p):
            assert action.help and action.help.strip(), action.option_strings


def _error_line(capsys):
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), captured.err
    return lines[-1]


@pytest.mark.parametrize("argv, expected", [
    (["pretrain", "--data", "{missing}"], "Not a directory"),
    (["pretrain", "--config", "vjepa_tiny_cpu", "--data", "{missing}"], "--video"),
    (["pretrain", "--data", "{missing}", "--short-videos", "pad"], "--short-videos"),
    (["evaluate", "--data", "digits", "--probes", "linear,nope"], "nope"),
    (["evaluate", "--data", "{missing}", "--encoder", "{missing}"], "Unknown preset"),
    (["intphys", "--preset", "{missing}.keras", "--data", "{missing}", "--format", "grasp"],
     "Model file not found"),
    (["xrm", "--dataset", "features"], "--features"),
    (["train-llip", "--models", "siglip,nope"], "unknown model 'nope'"),
    (["demo", "--epochs", "2"], "--epochs applies to --task digits; use --steps"),
    (["demo", "--task", "digits", "--steps", "2"], "--steps applies to --task physics"),
    (["presets", "--filter", "no-such-preset"], "no preset name contains"),
    (["convert", "{missing}.pth.tar", "{missing}_out", "--arch", "vjepa_tiny_cpu"],
     "{missing}"),
])
def test_bad_input_is_one_error_line_and_status_2(argv, expected, tmp_path, capsys):
    missing = str(tmp_path / "missing")
    argv = [a.replace("{missing}", missing) for a in argv]
    assert cli.main(argv) == 2
    assert expected.replace("{missing}", missing) in _error_line(capsys)


def test_debug_reraises_with_the_traceback(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="Not a directory"):
        cli.main(["--debug", "pretrain", "--data", missing])
    with pytest.raises(ValueError, match="Not a directory"):
        cli.main(["pretrain", "--data", missing, "--debug"])  # after the subcommand too


def test_bugs_keep_their_traceback(monkeypatch):
    def broken(args):
        raise TypeError("a bug, not bad input")

    monkeypatch.setattr(cli.program("pretrain"), "run", broken)
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["pretrain", "--data", "d"])
    monkeypatch.setattr(cli.program("pretrain"), "run", lambda args: {}["missing key"])
    with pytest.raises(KeyError):
        cli.main(["pretrain", "--data", "d"])


def test_os_errors_read_without_errno(monkeypatch, capsys):
    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/data/locked")

    monkeypatch.setattr(cli.program("pretrain"), "run", unreadable)
    assert cli.main(["pretrain", "--data", "d"]) == 2
    assert _error_line(capsys) == "error: Permission denied: '/data/locked'"


def test_demo_options_reach_both_tasks(monkeypatch):
    import keras_jepa.programs.demo_digits
    import keras_jepa.programs.demo

    calls = {}
    monkeypatch.setattr(keras_jepa.programs.demo, "run_demo",
                        lambda **kw: calls.setdefault("physics", kw))
    monkeypatch.setattr(keras_jepa.programs.demo_digits, "run", lambda **kw: calls.setdefault("digits", kw))
    size = ["--image-size", "16", "--patch-size", "4", "--depth", "1"]
    assert cli.main(["demo", "--steps", "5", "--seed", "3"] + size) == 0
    assert calls["physics"] == dict(steps=5, seed=3, output_dir=None, image_size=16,
                                    patch_size=4, depth=1)
    assert cli.main(["demo", "--task", "digits", "--epochs", "2", "--output", "o"] + size) == 0
    assert calls["digits"] == dict(seed=0, epochs=2, output_dir="o", image_size=16,
                                   patch_size=4, depth=1)
    help_text = {a.dest: a.help for a in cli._parser()._subparsers._group_actions[0]
                 .choices["demo"]._actions}
    assert "keras_jepa_demo" in help_text["output"]
    assert "--task digits only" in help_text["epochs"]


def test_convert_flags_and_cli_advice(monkeypatch, capsys, tmp_path):
    from keras_jepa.checkpoints import converters

    seen = {}

    def fake_convert(checkpoint, output, **kwargs):
        seen.update(kwargs)
        raise ValueError("The checkpoint holds no predictor. Convert the encoder alone "
                         "(encoder_only=True / --encoder-only), or pass allow_missing=True "
                         "to keep a freshly initialised predictor; or pass strict=False.")

    monkeypatch.setattr(converters, "convert_checkpoint", fake_convert)
    assert cli.main(["convert", "c.pt", str(tmp_path / "o"), "--allow-missing"]) == 2
    assert seen["allow_missing"] is True and seen["strict"] is True
    line = _error_line(capsys)
    assert "allow_missing=True (CLI: --allow-missing)" in line
    assert "strict=False (CLI: --non-strict)" in line
    assert "(CLI: --encoder-only)" not in line  # already named there
    assert cli.main(["convert", "c.pt", str(tmp_path / "o"), "--probe",
                     "--allow-missing"]) == 2
    assert "--allow-missing does not apply to --probe" in _error_line(capsys)


def test_presets_show_no_none_class(capsys):
    assert cli.main(["presets", "--filter", "vjepa2_ac"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("vjepa2_ac_vitg16_256"))
    assert "None" not in row
    assert row.split()[1:3] == ["VJEPA2AC", "yes"]


def test_pretrain_flags_reach_pretrain(monkeypatch):
    import keras_jepa.programs.pretrain

    seen = {}
    monkeypatch.setattr(keras_jepa.programs.pretrain, "pretrain",
                        lambda config, data, **kw: seen.update(kw, config=config, data=data))
    assert cli.main(["pretrain", "--config", "vjepa_tiny_cpu", "--video", "--data", "d",
                     "--short-videos", "pad", "--overwrite", "--steps-per-epoch", "3"]) == 0
    assert seen["config"].name == "vjepa_tiny_cpu" and seen["data"] == "d"
    assert (seen["short_videos"], seen["overwrite"], seen["steps_per_epoch"]) == ("pad", True, 3)


def _write_video(path, frames):
    av = pytest.importorskip("av")

    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            frame = np.full((32, 32, 3), 20 * i, "uint8")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


def test_short_video_warning_names_the_flag(tmp_path):
    from keras_jepa.models.jepa.recipes import build_dataset, get_config

    config = get_config("vjepa_tiny_cpu")  # clips of 8 frames every 2: 16 frames needed
    for name in ("a.mp4", "b.mp4"):
        _write_video(str(tmp_path / name), 12)
    skipping = build_dataset(config, str(tmp_path), batch_size=1)
    with pytest.warns(RuntimeWarning, match=r"too_short.*--short-videos pad") as record:
        with pytest.raises(RuntimeError, match="No readable file"):
            skipping[0]
    assert any('short_videos="pad"' in str(w.message) for w in record)
    padding = build_dataset(config, str(tmp_path), batch_size=1, short_videos="pad")
    assert padding[0]["videos"].shape == (1, 8, 32, 32, 3)
    assert padding.num_skipped == 0


# --------------------------------------------------------------------------- pretrain reruns


def _images(root, count):
    os.makedirs(root)
    rng = np.random.RandomState(0)
    for i in range(count):
        Image.fromarray(rng.randint(0, 255, (32, 32, 3)).astype("uint8")).save(
            os.path.join(root, f"{i}.png"))
    return root


def _log_epochs(out):
    with open(os.path.join(out, "log.csv")) as f:
        return [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]


def test_pretrain_rerun_refuses_other_arguments_and_overwrite_starts_fresh(
        tmp_path, capsys, monkeypatch):
    import keras_jepa.models.jepa.recipes

    # ijepa_tiny_cpu, smaller still (a traced fit costs seconds per layer).
    tiny = keras_jepa.models.jepa.recipes.get_config("ijepa_tiny_cpu").replace(
        image_size=16, depth=1, predictor_depth=1, hidden_dim=32, num_heads=2,
        predictor_dim=16, predictor_heads=2)
    import keras_jepa.programs.pretrain

    for module in (keras_jepa.models.jepa.recipes, keras_jepa.programs.pretrain):
        monkeypatch.setattr(module, "get_config", lambda name: tiny)
    data = _images(str(tmp_path / "images"), 16)
    out = str(tmp_path / "run")
    base = ["pretrain", "--data", data, "--epochs", "1", "--output", out]
    # 1. A fresh run records its identity.
    assert cli.main(base + ["--batch-size", "8"]) == 0
    with open(os.path.join(out, "run_identity.json")) as f:
        identity = json.load(f)
    assert identity["data"]["source"] == os.path.realpath(data)
    assert (identity["data"]["num_samples"], identity["batch_size"], identity["epochs"],
            identity["steps_per_epoch"], identity["seed"], identity["video"]) == (
        16, 8, 1, 2, 0, False)
    assert identity["config"]["name"] == "ijepa_tiny_cpu"
    assert "16 files found" in capsys.readouterr().out
    assert _log_epochs(out) == [0]

    # 2. Other batch size, seed and data: refused before anything is touched.
    other = _images(str(tmp_path / "other"), 12)
    before = {name: os.path.getmtime(os.path.join(out, name))
              for name in ("log.csv", "run_identity.json", "config.json")}
    assert cli.main(["pretrain", "--data", other, "--epochs", "1", "--output", out,
                     "--batch-size", "4", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    for line in ("batch_size: 8 -> 4", "steps_per_epoch: 2 -> 3", "seed: 0 -> 1",
                 "data.num_samples: 16 -> 12",
                 f"data.source: {json.dumps(os.path.realpath(data))} -> "
                 f"{json.dumps(os.path.realpath(other))}"):
        assert line in err, line
    assert "same arguments to resume" in err and "--output" in err and "--overwrite" in err
    assert "epochs:" not in err and "config." not in err  # only what differs
    assert before == {name: os.path.getmtime(os.path.join(out, name)) for name in before}

    # 3. The same arguments resume (a finished run: nothing more to train).
    assert cli.main(base + ["--batch-size", "8"]) == 0
    assert "(resuming)" in capsys.readouterr().out
    assert _log_epochs(out) == [0]

    # 4. --overwrite deletes the run's own files only, then trains from scratch.
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    assert cli.main(base + ["--batch-size", "4", "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert "(resuming)" not in captured.out and "removed the previous run's" in captured.out
    assert _log_epochs(out) == [0]  # a fresh log, not appended to
    with open(os.path.join(out, "run_identity.json")) as f:
        assert json.load(f)["batch_size"] == 4
    with open(os.path.join(out, "notes.txt")) as f:
        assert f.read() == "mine"

    # 5. A run folder from before run_identity.json: resumed, with a warning.
    os.remove(os.path.join(out, "run_identity.json"))
    assert cli.main(base + ["--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "could not be checked" in err
    assert os.path.exists(os.path.join(out, "run_identity.json"))
    assert _log_epochs(out) == [0]
    shutil.rmtree(out)


@pytest.mark.parametrize("extra, flag", [
    (["--video"], "--video"),
    (["--init-from", "runs/phase1"], "--init-from"),
    (["--short-videos", "pad"], "--short-videos pad"),
])
def test_lejepa_config_refuses_jepa_only_flags(extra, flag, monkeypatch, capsys):
    import keras_jepa.programs.pretrain_lejepa

    monkeypatch.setattr(keras_jepa.programs.pretrain_lejepa, "pretrain_lejepa",
                        lambda *a, **kw: pytest.fail("should be refused first"))
    assert cli.main(["pretrain", "--config", "lejepa_tiny_cpu", "--data", "d"] + extra) == 2
    line = _error_line(capsys)
    assert f"{flag} does not apply to the LeJEPA config 'lejepa_tiny_cpu'" in line
