"""Windows, features, the trajectory model and the predictors (never imports perception or outputs)."""
