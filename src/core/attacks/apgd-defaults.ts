/**
 * Names, reference and default parameters of APGD (Auto-PGD, Croce & Hein 2020), as data, for the
 * attack specs in apgd.ts. The defaults are the paper's: N_iter = 100, ρ = 0.75, α = 0.75, η⁽⁰⁾ = 2ε, checkpoints p₀ = 0, p₁ = 0.22,
 * p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), and 9 target classes for APGD-T.
 */
export const APGD_DEFAULTS = {
  /** Gradient steps per run (N_iter). */
  steps: 100,
  /** Runs per sample (APGD-T: per target class); later runs attack only samples not fooled yet. */
  restarts: 1,
  /** 'ce' (APGD-CE), 'dlr' (APGD-DLR) or 'dlr-targeted' (APGD-T). */
  loss: 'ce',
  /** APGD-T: how many of the most likely wrong classes are targeted in turn (capped at classes − 1). */
  targetClasses: 9,
  /** ρ: the step size halves when fewer than ρ·(w_j − w_{j−1}) steps since the last checkpoint raised the loss. */
  rho: 0.75,
  /** α: weight of the new gradient step against the previous move (1 − α). */
  momentum: 0.75,
  /** η⁽⁰⁾ = initialStepFactor · eps, for L∞ and L2 alike. */
  initialStepFactor: 2,
  /** Start from a uniform random point of the eps-ball. */
  randomStart: true,
} as const;
