"""The producer's learner as it was before it moved to shared/learning: a frozen copy, kept only as the
learning benchmark's baseline ("previous"). Its choosing is unchanged (Gibbs-sampled additive Gaussian
model, Student-t arm residuals, change detection per block, a fixed exploration floor); what only the
producer needed (state, estimates, summaries) is left out. Not used by any service."""
