"""Supervised training with validation, early stopping, a progress bar, and resume after interruption.

Adam with a one-cycle learning-rate schedule; after every epoch the validation accuracy decides the
best epoch (ties: lower validation loss), training stops after ``patience`` epochs without improvement,
and the best weights are kept and saved. A model with a ``regularisation()`` method (e.g. the Ip-norm
models' block-norm regulariser) has it added to every batch's loss. The full training state is written
atomically after each epoch to ``<output>/.resume``; ``fit(..., resume=True)`` continues from it bit for
bit (same seed, same result as an uninterrupted run).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from multiviz.adapters import TorchAdapter
from multiviz.data.registry import TrainingData, load_dataset
from multiviz.errors import InputError, MultivizError
from multiviz.io import atomic_directory, atomic_write_json
from multiviz.models import (
    build_model,
    embedding_modules,
    fast_path,
    load_saved_state_dict,
    regularisation,
    saved_state_dict,
)
from multiviz.progress import progress_bar
from multiviz.training.checkpoint import check_device, save_checkpoint
from multiviz.training.config import TrainConfig

RESUME_DIR = ".resume"


@dataclass
class TrainResult:
    adapter: TorchAdapter
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


def evaluate(adapter: TorchAdapter, batch: Mapping[str, Tensor], batch_size: int = 4096) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``adapter`` on a labelled batch dict."""
    data = TrainingData({"eval": dict(batch)}, list(adapter.modalities), adapter.num_classes)
    return evaluate_split(adapter, data, "eval", batch_size)


def evaluate_split(
    adapter: TorchAdapter, data: TrainingData, split: str, batch_size: int = 512
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``adapter`` on split ``split`` of ``data`` (in the model's
    ``fast_path``, e.g. with a frozen text encoder's outputs memoised)."""
    adapter.model.eval()
    total = data.size(split)
    correct = 0
    loss = 0.0
    with torch.no_grad(), fast_path(adapter.model):
        for start in range(0, total, batch_size):
            part = data.batch(split, slice(start, start + batch_size))
            logits = adapter.logits(part)
            labels = part["label"].to(logits.device)
            correct += int((logits.argmax(1) == labels).sum())
            loss += float(F.cross_entropy(logits, labels, reduction="sum"))
    return {"accuracy": correct / total, "loss": loss / total}


def fit(
    config: TrainConfig,
    output: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    data: TrainingData | None = None,
) -> TrainResult:
    """Train the configured model, keep the best epoch, save it as a checkpoint in ``output``."""
    output = Path(output)
    check_device(config.device)
    data = data if data is not None else load_dataset(**config.dataset)
    torch.manual_seed(config.seed)
    model = _build_model(config.model).to(config.device)
    adapter = TorchAdapter(model, data.modalities, embeddings=embedding_modules(model))
    _check_model_fits(adapter, data, config)
    n_train = data.size("train")
    steps_per_epoch = (n_train + config.batch_size - 1) // config.batch_size
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    state = _State()
    if resume:
        state = _load_resume(output / RESUME_DIR, config, model, optimizer, schedule, shuffle)

    started, seconds_before = time.perf_counter(), state.seconds
    with progress_bar(show=show_progress) as progress, fast_path(model):
        epochs_task = progress.add_task("epochs", total=config.epochs, completed=state.epoch)
        steps_task = progress.add_task("batches", total=steps_per_epoch)
        while state.epoch < config.epochs and state.stale < config.patience:
            order = data.shuffled_rows("train", shuffle)
            progress.reset(steps_task, total=steps_per_epoch)
            last_loss = _train_epoch(
                adapter, data, order, config, optimizer, schedule, lambda: progress.advance(steps_task)
            )
            metrics = evaluate_split(adapter, data, "val")
            _record_epoch(state, metrics, last_loss, model)
            progress.update(
                epochs_task,
                completed=state.epoch,
                description=f"epochs (val acc {metrics['accuracy']:.4f}, best {state.best_accuracy:.4f})",
            )
            state.seconds = seconds_before + time.perf_counter() - started
            _save_resume(output / RESUME_DIR, config, model, optimizer, schedule, shuffle, state)

    load_saved_state_dict(model, state.best_weights)
    model.eval()
    test = evaluate_split(adapter, data, "test")
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "val_accuracy": state.best_accuracy,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "train_seconds": seconds_before + time.perf_counter() - started,
    }
    metadata = {"metrics": metrics, "history": state.history, "training": config.to_dict()}
    path = save_checkpoint(output, adapter, metadata)
    return TrainResult(adapter, metrics, state.history, path)


@dataclass
class _State:
    epoch: int = 0
    best_epoch: int = 0
    best_accuracy: float = -1.0
    best_loss: float = float("inf")
    stale: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_weights: dict[str, Tensor] = field(default_factory=dict)


def _train_epoch(
    adapter: TorchAdapter,
    data: TrainingData,
    order: torch.Tensor,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    advance: Callable[[], object],
) -> float:
    """One pass over the training rows in ``order``, one optimiser step per batch; the last batch's loss."""
    model = adapter.model
    model.train()
    loss = torch.zeros(())
    for start in range(0, len(order), config.batch_size):
        rows = order[start : start + config.batch_size]
        batch = {k: v.to(config.device) for k, v in data.batch("train", rows).items()}
        logits = adapter.logits(batch)
        loss = F.cross_entropy(logits, batch["label"])
        penalty = regularisation(model, batch["label"])  # e.g. Ip-norm's block norm, FL-I2MoE's losses
        if penalty is not None:
            loss = loss + penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        advance()
    return float(loss.detach())


def _record_epoch(state: _State, metrics: dict[str, float], last_loss: float, model: nn.Module) -> None:
    """Append the epoch to the history; keep its weights when it is the best so far (validation accuracy,
    then loss), else count it as stale (early stopping)."""
    state.epoch += 1
    state.history.append(
        {
            "epoch": state.epoch,
            "val_accuracy": metrics["accuracy"],
            "val_loss": metrics["loss"],
            "train_loss_last": last_loss,
        }
    )
    if (metrics["accuracy"], -metrics["loss"]) > (state.best_accuracy, -state.best_loss):
        state.best_accuracy, state.best_loss, state.best_epoch = (
            metrics["accuracy"],
            metrics["loss"],
            state.epoch,
        )
        state.best_weights = {k: v.detach().clone() for k, v in saved_state_dict(model).items()}
        state.stale = 0
    else:
        state.stale += 1


def _build_model(section: dict[str, Any]) -> torch.nn.Module:
    """The configured model; a constructor that rejects its options raises an :class:`InputError`
    naming the model section instead of a bare ``TypeError``."""
    options = dict(section)
    name = options.pop("name")
    try:
        return build_model(name, options)
    except MultivizError:
        raise
    except (TypeError, ValueError) as error:
        raise InputError(
            f"cannot build model {name!r} from the options {sorted(options)}: {error}", argument="model"
        ) from None


def _check_model_fits(adapter: TorchAdapter, data: TrainingData, config: TrainConfig) -> None:
    """One forward pass on two training rows before training starts: a model whose inputs or classes do
    not match the data set fails here, naming both, instead of deep inside the first batch. (Evaluation
    mode and no gradients: it consumes no random numbers and changes no weight.)"""
    batch = {k: v.to(config.device) for k, v in data.batch("train", slice(0, 2)).items()}
    name = config.model["name"]
    try:
        with torch.no_grad():
            logits = adapter.logits(batch)
    except MultivizError:
        raise
    except (TypeError, RuntimeError, KeyError) as error:
        modalities = {m.name: m.modality_kind.value for m in data.modalities}
        detail = " ".join(str(error).split())[:300]
        raise InputError(
            f"model {name!r} does not accept the data set's batches (modalities {modalities}): "
            f"{type(error).__name__}: {detail}",
            argument="model",
        ) from None
    if logits.shape[1] < data.num_classes:
        raise InputError(
            f"model {name!r} returns {logits.shape[1]} logits but the data set has {data.num_classes} "
            "classes; set its num_classes",
            argument="model",
        )


def _save_resume(
    path: Path,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    shuffle: torch.Generator,
    state: _State,
) -> None:
    optimizer_state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in saved_state_dict(model).items()}
    tensors |= {f"best.{k}": v for k, v in state.best_weights.items()}
    for index, values in optimizer_state["state"].items():
        tensors |= {f"optimizer.{index}.{k}": torch.as_tensor(v) for k, v in values.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = shuffle.get_state()
    meta = {
        "config": config.to_dict(),
        "state": {
            k: getattr(state, k)
            for k in ("epoch", "best_epoch", "best_accuracy", "best_loss", "stale", "seconds", "history")
        },
        "optimizer_groups": optimizer_state["param_groups"],
        "schedule": schedule.state_dict(),
    }

    def fill(directory: Path) -> None:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(directory / "state.safetensors"),
        )
        atomic_write_json(directory / "state.json", meta)

    atomic_directory(path, fill)


def _load_resume(
    path: Path,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    shuffle: torch.Generator,
) -> _State:
    if not (path / "state.json").is_file():
        raise InputError(f"nothing to resume: no training state at {path}", argument="resume")
    meta = json.loads((path / "state.json").read_text())
    if meta["config"] != config.to_dict():
        raise InputError(
            f"the training state at {path} was made with another config; train without --resume "
            "or use the same config",
            argument="resume",
        )
    tensors = load_file(str(path / "state.safetensors"))
    load_saved_state_dict(
        model, {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": meta["optimizer_groups"]}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors["rng.torch"])
    shuffle.set_state(tensors["rng.shuffle"])
    state = _State(**meta["state"])
    state.best_weights = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    return state


def clear_resume_state(output: str | Path) -> None:
    shutil.rmtree(Path(output) / RESUME_DIR, ignore_errors=True)
