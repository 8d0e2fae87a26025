import dataclasses

import pytest

from pipeline.core.config import TrackRunConfig, from_dict, load_yaml
from pipeline.core.errors import UserError
from tests.conftest import ROOT


def _flatten(cfg, prefix=""):
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out.update(_flatten(v, f"{prefix}{f.name}.") if dataclasses.is_dataclass(v) else {f"{prefix}{f.name}": v})
    return out


def test_default_yaml_documents_every_key_with_the_dataclass_defaults():
    from_yaml = from_dict(TrackRunConfig, load_yaml(ROOT / "configs" / "default.yaml"))
    assert _flatten(from_yaml) == _flatten(TrackRunConfig())
    text = (ROOT / "configs" / "default.yaml").read_text()
    for key in _flatten(TrackRunConfig()):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(key.split(".")[-1] + ":"))
        assert "#" in line, f"{key} has no comment in default.yaml"


@pytest.mark.parametrize(
    "data, msg",
    [
        ({"detector": {"conf": 1.5}}, "detector.conf"),
        ({"detector": {"confidence": 0.5}}, "unknown config key 'detector.confidence'"),
        ({"tracker": {"type": "sort"}}, "tracker.type"),
        ({"predictor": {"horizon_s": "far"}}, "predictor.horizon_s"),
        ({"predictor": {"obs_steps": 2.5}}, "predictor.obs_steps"),
        ({"output": {"video": "yes"}}, "output.video"),
        ({"history": 3}, "history"),
    ],
)
def test_bad_values_name_the_key(data, msg):
    with pytest.raises(UserError, match=msg.replace(".", r"\.")):
        from_dict(TrackRunConfig, data)


def test_yaml_errors_are_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(UserError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(UserError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")


def test_classes_accept_comma_string():
    cfg = from_dict(TrackRunConfig, {"detector": {"classes": "person, car"}})
    assert cfg.detector.classes == ["person", "car"]
