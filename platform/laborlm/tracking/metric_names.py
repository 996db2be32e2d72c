"""Every metric key LaborLM logs, defined once. Keys are ``split/name`` in lower_snake_case with units in the
name; dashboards/ and tests read these constants rather than spelling keys themselves."""

from __future__ import annotations

TRAIN_LOSS = "train/loss"
TRAIN_LR = "train/lr"
VALID_LOSS = "valid/loss"
VALID_PERPLEXITY = "valid/perplexity"  # token-level, of the language model's validation loss
VALID_OCCUPATION_PERPLEXITY = "valid/occupation_perplexity"  # next-occupation, the harness's, on valid persons
VALID_OCCUPATION_PERPLEXITY_RAW = "valid/occupation_perplexity_raw"  # LM: not renormalised (LABOR-LLM's reading)
VALID_OUTSIDE_MASS = "valid/outside_mass"  # LM: mean probability on strings that are no valid label
VALID_LABEL_TOKEN_LOSS = "valid/label_token_loss"  # LM: nats per occupation-label token (vs valid/loss: all tokens)
VALID_BEST_OCCUPATION_PERPLEXITY = "valid/best_occupation_perplexity"  # the selected (best) model's
TEST_PERPLEXITY = "test/perplexity"
TEST_ORACLE_PERPLEXITY = "test/oracle_perplexity"
TEST_ORACLE_GAP = "test/oracle_gap"
TEST_STAY_AUC = "test/stay_auc"
TEST_STAY_CALIBRATION_ERROR = "test/stay_calibration_error"
THROUGHPUT_TOKENS_PER_S = "throughput/tokens_per_s"
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
