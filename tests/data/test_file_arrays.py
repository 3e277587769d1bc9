"""load_arrays: NPZ and Parquet arrays for time series and tabular modalities; joining with a table."""

import json

import numpy as np
import pytest
import torch

from multiviz import InputError
from multiviz.adapters.common import ModalityAdapterBase
from multiviz.data.files import load_arrays, load_files, load_table

RNG = np.random.default_rng(0)
SERIES = RNG.standard_normal((5, 7)).astype(np.float32)
SENSORS = RNG.standard_normal((5, 7, 2))
TABLE = RNG.standard_normal((5, 3))
LABELS = np.array(["walk", "run", "walk", "sit", "run"])


@pytest.fixture
def npz_file(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, series=SERIES, sensors=SENSORS, table=TABLE, label=LABELS)
    return path


def test_npz_time_series_and_tabular(npz_file):
    data = load_files(
        npz_file, modalities={"series": "timeseries", "sensors": "timeseries", "table": "tabular"}
    )
    assert data.tensors["series"].shape == (5, 7, 1)  # [N, T] gets its feature axis
    assert torch.equal(data.tensors["series"][..., 0], torch.from_numpy(SERIES))
    assert data.tensors["sensors"].dtype == torch.float32
    assert torch.allclose(data.tensors["sensors"], torch.from_numpy(SENSORS).float())
    assert data.label_names == ["run", "sit", "walk"] and data.labels.tolist() == [2, 0, 2, 1, 0]
    batch = data.batch()
    ModalityAdapterBase(data.modalities).validate(batch)
    layout = data.modality("series").atomizer.layout(batch["series"], "series")
    assert layout.n_atoms == [7] * 5


def test_npz_errors_name_the_file_and_key(npz_file, tmp_path):
    with pytest.raises(
        InputError, match=r"has no array 'audio'; it has \['label', 'sensors', 'series', 'table'\]"
    ):
        load_arrays(npz_file, modalities={"audio": "audio"})
    with pytest.raises(InputError, match=rf"{tmp_path / 'none.npz'}: no such file"):
        load_arrays(tmp_path / "none.npz", modalities={"series": "timeseries"})
    short = tmp_path / "short.npz"
    np.savez(short, series=SERIES, label=LABELS[:3])
    with pytest.raises(InputError, match=r"disagree on the row count"):
        load_arrays(short, modalities={"series": "timeseries"})
    nan = tmp_path / "nan.npz"
    np.savez(nan, table=np.array([[1.0, np.nan]]), label=np.array([0]))
    with pytest.raises(InputError, match=r"modality 'table'.*contains NaN or Inf \(samples \[0\]\)"):
        load_arrays(nan, modalities={"table": "tabular"})
    with pytest.raises(InputError, match="unknown kind 'series'"):
        load_arrays(npz_file, modalities={"series": "series"})


def test_parquet_list_columns_and_scalar_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "sensors": [row.tolist() for row in SENSORS],
            "age": TABLE[:, 0],
            "income": TABLE[:, 1],
            "label": [3, 1, 0, 3, 2],
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    data = load_arrays(
        path, modalities={"sensors": "timeseries", "person": "tabular"}, columns={"person": ["age", "income"]}
    )
    assert torch.allclose(data.tensors["sensors"], torch.from_numpy(SENSORS).float())
    assert torch.allclose(data.tensors["person"], torch.from_numpy(TABLE[:, :2]).float())
    assert data.modality("person").atomizer.names == ["age", "income"]
    assert data.label_names == ["0", "1", "2", "3"] and data.labels.tolist() == [3, 1, 0, 3, 2]
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"s": [[1.0, 2.0], [3.0]], "label": [0, 1]}), ragged)
    with pytest.raises(InputError, match=r"column 's' holds lists of different lengths"):
        load_arrays(ragged, modalities={"s": "timeseries"})


def test_join_lines_up_rows_after_a_skipped_image(npz_file, tmp_path):
    from PIL import Image

    for i in range(5):
        Image.new("RGB", (4, 4), (50 * i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"broken")
    rows = [{"image": f"{i}.png", "label": str(label)} for i, label in enumerate(LABELS)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        images = load_table(tmp_path / "t.jsonl", image="image", image_size=4, skip_bad_images=True)
    arrays = load_arrays(npz_file, modalities={"series": "timeseries"})
    joined = images.join(arrays)
    assert joined.rows.tolist() == [0, 1, 2, 4]
    assert torch.equal(joined.tensors["series"][:, :, 0], torch.from_numpy(SERIES[[0, 1, 2, 4]]))
    assert torch.allclose(joined.tensors["image"][:, 0, 0, 0], torch.tensor([0, 50, 100, 200]) / 255)
    assert [joined.label_names[i] for i in joined.labels.tolist()] == ["walk", "run", "walk", "run"]
    assert [m.name for m in joined.modalities] == ["image", "series"]
    with pytest.raises(InputError, match=r"both data sets hold \['series'\]"):
        arrays.join(arrays)


def test_a_config_trains_on_your_own_files(tmp_path):
    """dataset: {name: files, path: ...} trains the registered MLP; the rule y = [x0 + x1 > 0] is learnt."""
    from multiviz.training import TrainConfig, fit

    generator = np.random.default_rng(1)
    x = generator.standard_normal((300, 4)).astype(np.float32)
    np.savez(tmp_path / "rule.npz", x=x, label=(x[:, 0] + x[:, 1] > 0).astype(np.int64))
    config = TrainConfig(
        dataset={"name": "files", "path": str(tmp_path / "rule.npz"), "modalities": {"x": "tabular"}},
        model={"name": "concat_mlp", "input_dims": {"x": 4}, "hidden": [16], "num_classes": 2},
        epochs=6,
        batch_size=50,
        learning_rate=0.03,
        patience=6,
    )
    result = fit(config, tmp_path / "run", show_progress=False)
    assert result.metrics["test_accuracy"] >= 0.9
    no_labels = load_arrays(tmp_path / "rule.npz", modalities={"x": "tabular"}, label=None)
    with pytest.raises(InputError, match="has no labels to train on"):
        no_labels.training_data()
