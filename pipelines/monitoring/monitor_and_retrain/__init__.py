"""Monitor served traffic against the deployed model; retrain when it drifted."""
