"""Runs MMSA 2.2.1's Self-MM (inside the MMSA venv, not this project's) and prints its training step rate.

    MMSA_VENV/bin/python benchmarks/mmsa_driver.py PICKLE BERT_DIR WORK_DIR EARLY_STOP

Patches: `torch.cuda.set_device` is a no-op (MMSA calls it even on CPU); training-mode forward passes (batches,
samples) and Adam steps are counted (Self-MM steps the optimizer every `update_epochs`=4 batches) and
`SELF_MM.do_train` (epochs of training + the per-epoch validation MMSA runs) is timed.
"""

import json
import sys
import time

import torch

torch.cuda.set_device = lambda *args, **kwargs: None
from MMSA import run as mmsa_run  # noqa: E402
from MMSA.models.AMIO import AMIO  # noqa: E402
from MMSA.trains.multiTask.SELF_MM import SELF_MM  # noqa: E402

pickle_path, bert_dir, work_dir, early_stop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else torch.get_num_threads())
counters = {"steps": 0, "epochs": 0, "batches": 0, "samples": 0}
amio_forward = AMIO.forward


def counting_forward(self, text_x, audio_x, video_x, *args, **kwargs):
    if self.training:
        counters["batches"] += 1
        counters["samples"] += int(text_x.shape[0])
    return amio_forward(self, text_x, audio_x, video_x, *args, **kwargs)


AMIO.forward = counting_forward
adam_step = torch.optim.Adam.step


def counting_step(self, *args, **kwargs):
    counters["steps"] += 1
    return adam_step(self, *args, **kwargs)


torch.optim.Adam.step = counting_step
original_train, original_test = SELF_MM.do_train, SELF_MM.do_test


def timed_train(self, model, dataloader, return_epoch_results=False):
    start = time.perf_counter()
    result = original_train(self, model, dataloader, return_epoch_results)
    counters["train_seconds"] = time.perf_counter() - start
    return result


def counting_test(self, model, dataloader, mode="VAL", return_sample_results=False):
    if mode == "VAL":
        counters["epochs"] += 1
    return original_test(self, model, dataloader, mode, return_sample_results)


SELF_MM.do_train, SELF_MM.do_test = timed_train, counting_test
config = {"featurePath": pickle_path, "pretrained": bert_dir, "text_out": json.load(open(f"{bert_dir}/config.json"))["hidden_size"],
          "early_stop": early_stop, "batch_size": 16}
results = mmsa_run.MMSA_run("self_mm", "mosi", config=config, seeds=[1111], gpu_ids=[], num_workers=0,
                            model_save_dir=f"{work_dir}/saved", res_save_dir=f"{work_dir}/results", log_dir=f"{work_dir}/logs")
seconds = counters["train_seconds"]
print(json.dumps({**counters, "batches_per_second": counters["batches"] / seconds,
                  "samples_per_second": counters["samples"] / seconds}))
