"""Every metric key LaborLM logs, defined once. Keys are ``split/name`` in lower_snake_case with units in the
name; dashboards/ and tests read these constants rather than spelling keys themselves."""

from __future__ import annotations

TRAIN_LOSS = "train/loss"  # mean training loss since the previous log or report, all workers
TRAIN_LR = "train/lr"
TRAIN_STEP = "train/step"  # optimiser steps taken (in this phase or fit)
TRAIN_EPOCH = "train/epoch"  # completed passes over the training data
TRAIN_STOPPED_EARLY = "train/stopped_early"  # 1.0 when early stopping ended training before max_steps
VALID_INITIAL_LOSS = "valid/initial_loss"  # LM: valid/loss before the first step
VALID_BEST_LOSS = "valid/best_loss"  # LM: the lowest valid/loss so far
VALID_BEST_STEP = "valid/best_step"  # LM: the step of the selected (best) model
EVAL_PERPLEXITY = "eval/perplexity"  # careers: exp(mean NLL) over every validation person-year
EVAL_BEST_PERPLEXITY = "eval/best_perplexity"  # careers: the best eval/perplexity so far (the model returned)
VALID_LOSS = "valid/loss"
VALID_PERPLEXITY = "valid/perplexity"  # token-level, of the language model's validation loss
VALID_OCCUPATION_PERPLEXITY = (
    "valid/occupation_perplexity"  # next-occupation, the harness's, on valid persons
)
VALID_OCCUPATION_PERPLEXITY_RAW = (
    "valid/occupation_perplexity_raw"  # LM: not renormalised (LABOR-LLM's reading)
)
VALID_OUTSIDE_MASS = "valid/outside_mass"  # LM: mean probability on strings that are no valid label
VALID_LABEL_TOKEN_LOSS = (
    "valid/label_token_loss"  # LM: nats per occupation-label token (vs valid/loss: all tokens)
)
VALID_BEST_OCCUPATION_PERPLEXITY = "valid/best_occupation_perplexity"  # the selected (best) model's
TEST_PERPLEXITY = "test/perplexity"
TEST_ORACLE_PERPLEXITY = "test/oracle_perplexity"
TEST_ORACLE_GAP = "test/oracle_gap"
TEST_STAY_AUC = "test/stay_auc"
TEST_STAY_CALIBRATION_ERROR = "test/stay_calibration_error"
THROUGHPUT_TOKENS_PER_S = "throughput/tokens_per_s"
THROUGHPUT_TOKENS_PER_S_PER_DEVICE = (
    "throughput/tokens_per_s_per_device"  # benchmark hardware: all ranks / ranks
)
THROUGHPUT_STEP_TIME_S = "throughput/step_time_s"  # mean wall time of a timed optimiser step
THROUGHPUT_MFU = (
    "throughput/mfu"  # model FLOPs utilisation, a fraction (workflows.benchmark_hardware.flops_per_token)
)
MEMORY_PEAK_BYTES_PER_DEVICE = (
    "memory/peak_bytes_per_device"  # cuda max_memory_allocated, or worker peak RSS on CPU
)
SCORING_FAST_PERSON_YEARS_PER_S = (
    "scoring/fast_person_years_per_s"  # LlmScorer.score (prefix cache + label trie)
)
SCORING_NAIVE_PERSON_YEARS_PER_S = (
    "scoring/naive_person_years_per_s"  # LlmScorer.score_naive (a pass per label)
)
TRAIN_TOKENS = "train/tokens"  # real (unpadded) training tokens seen so far, all workers
TRAIN_FLOPS = "train/flops"  # training compute, 6 x parameters x tokens (forward and backward)
MODEL_PARAMETERS = "model/parameters"
MODEL_NON_EMBEDDING_PARAMETERS = "model/non_embedding_parameters"  # Kaplan et al.'s N
DATA_PRETRAIN_PEOPLE = "data/pretrain_people"  # train-split people of the pretraining corpus a trial used
DATA_PRETRAIN_TOKENS = "data/pretrain_tokens"  # and their tokens (one epoch)
DATA_ROWS_IN = "data/rows_in"
DATA_ROWS_KEPT = "data/rows_kept"
DATA_ROWS_REJECTED = "data/rows_rejected"


def test_perplexity_of(transition: str) -> str:
    """Per-transition-type test perplexity key (CAREER Table 4), e.g. ``test/perplexity_new_job``."""
    return f"{TEST_PERPLEXITY}_{transition}"
