"""The monitor: served traffic against the deployed model's training statistics, evaluation and blessing."""
