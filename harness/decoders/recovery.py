"""Recovery after dropping a decoder's layers: the cut model fine-tuned on the training text it was trained on
(pydoc-lm's training topics), by next-token cross-entropy or, with `distill=true`, distilled from the uncut
baseline: alpha * KL(teacher/T || student/T) * T^2 + (1 - alpha) * cross-entropy. Runs in the contained build
process (`build_step`), before the model builder; `finetune=E` is E passes over the training tokens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.decoders.pydoc_lm import BATCH, SEED, SEQUENCE, split_topics

RECOVERY_LEARNING_RATE = 1e-3


def recover_decoder(student_folder: Path, teacher_folder: Path, recovery: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune (or distil into) the Hugging Face model in `student_folder`, saved back in place; what it did."""
    import torch
    import torch.nn.functional as functional
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(SEED)
    student = AutoModelForCausalLM.from_pretrained(str(student_folder), dtype=torch.float32, local_files_only=True)
    distill = bool(recovery.get("distill"))
    teacher = (
        AutoModelForCausalLM.from_pretrained(str(teacher_folder), dtype=torch.float32, local_files_only=True)
        if distill
        else None
    )
    if teacher is not None:
        teacher.eval()
    tokenizer = Tokenizer.from_file(str(student_folder / "tokenizer.json"))
    eos = int(student.config.eos_token_id if isinstance(student.config.eos_token_id, int) else 1)
    ids: list[int] = []
    for text in split_topics()[0]:
        ids += [*tokenizer.encode(text).ids, eos]
    tokens = torch.tensor(ids)
    steps = max(1, int(recovery["epochs"]) * (len(tokens) // (SEQUENCE * BATCH)))
    optimizer = torch.optim.AdamW(student.parameters(), lr=RECOVERY_LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=RECOVERY_LEARNING_RATE, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    temperature, alpha = float(recovery.get("temperature", 4.0)), float(recovery.get("alpha", 0.7))
    started = time.monotonic()
    student.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - SEQUENCE - 1, (BATCH,), generator=generator)
        batch = torch.stack([tokens[int(start) : int(start) + SEQUENCE] for start in starts])
        output = student(input_ids=batch, labels=batch)
        loss = output.loss
        if teacher is not None:
            with torch.no_grad():
                taught = teacher(input_ids=batch).logits
            soft = (
                functional.kl_div(
                    functional.log_softmax(output.logits / temperature, dim=-1),
                    functional.log_softmax(taught / temperature, dim=-1),
                    reduction="batchmean",
                    log_target=True,
                )
                / batch.shape[1]
            )
            loss = alpha * soft * temperature**2 + (1 - alpha) * output.loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    student.eval()
    student.save_pretrained(str(student_folder))
    return {
        "epochs": int(recovery["epochs"]),
        "steps": steps,
        "distill": distill,
        "seconds": round(time.monotonic() - started, 1),
        "last_loss": round(float(loss.detach()), 4),
    }
