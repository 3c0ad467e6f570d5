"""Files kerasflow 0.2 wrote, when the TV-L1 stack input was called ``flow``, load under today's name ``tvl1_stack``.

The fixture (tests/fixtures/kerasflow-0.2-optical-flow/) was written by kerasflow 0.2 (commit 5b08366): an
untrained ``optical_flow`` model (a ResNet-10 with 2 channels a stage, 32-px stacks of 2 TV-L1 pairs, 3
classes) saved as fit saves it, its logits on two random stacks (``logits.npz``: ``flow``, ``logits``), and
its TFLite export.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from kerasflow.data.inputs import TVL1_STACK
from kerasflow.export.predictors import load_predictor
from kerasflow.model_io import load_saved_model, read_model_info, save_model

FIXTURE = Path(__file__).parent / "fixtures" / "kerasflow-0.2-optical-flow"
SAVED = np.load(FIXTURE / "logits.npz")


def test_a_model_saved_with_the_old_input_name_loads_under_the_new_one(tmp_path):
    model, info, _ = load_saved_model(FIXTURE / "model.keras")
    assert TVL1_STACK == "tvl1_stack"
    assert info.input_names == [TVL1_STACK] and [tensor.name for tensor in model.inputs] == [TVL1_STACK]
    np.testing.assert_allclose(model.predict_on_batch({TVL1_STACK: SAVED["flow"]}), SAVED["logits"], rtol=1e-5,
                               atol=1e-7)
    # saved again, it is a model of today: the new name in its config and its metadata
    save_model(model, tmp_path / "again.keras", info)
    with zipfile.ZipFile(tmp_path / "again.keras") as archive:
        assert list(json.loads(archive.read("config.json"))["config"]["input_layers"]) == [TVL1_STACK]
    assert json.loads((tmp_path / "again.keras.json").read_text())["inputs"][0]["name"] == TVL1_STACK
    assert read_model_info(tmp_path / "again.keras") == info
    predictor = load_predictor(tmp_path / "again.keras")
    np.testing.assert_allclose(predictor({TVL1_STACK: SAVED["flow"]}), SAVED["logits"], rtol=1e-5, atol=1e-7)


def test_an_export_with_the_old_input_name_predicts_under_the_new_one():
    metadata = json.loads((FIXTURE / "export" / "metadata.json").read_text())
    assert [spec["name"] for spec in metadata["inputs"]] == ["flow"]
    predictor = load_predictor(FIXTURE / "export")
    assert predictor.format == "tflite" and predictor.info.input_names == [TVL1_STACK]
    assert predictor.signature() == ({TVL1_STACK: ((1, 32, 32, 4), "uint8")}, (1, 3))
    np.testing.assert_allclose(predictor({TVL1_STACK: SAVED["flow"]}), SAVED["logits"], atol=1e-5)
