#!/usr/bin/env python3
"""Open-set metrics (src/core/analysis/open-set.ts) recomputed independently in numpy: the
reference for test/unit/open-set.test.ts.

    /usr/bin/python3 scripts/reference_open_set.py --file scores.json

scores.json: {"known": [...], "unknown": [...], "knownCorrect": [0/1...], "thresholds": [...]}
(known inputs are the positives). Prints one JSON object:
- auroc: the mean over every (known, unknown) pair of [k > u] + 0.5 [k == u], by brute force;
- fprAt95Tpr / thresholdAt95Tpr: over the candidate thresholds (every distinct score), the highest
  t with mean(known >= t) >= 0.95, and mean(unknown >= t) there;
- per threshold: the share of unknowns rejected (score < t), of knowns rejected, and the accuracy
  among the accepted knowns.
"""
import argparse
import json

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    args = parser.parse_args()
    with open(args.file) as f:
        d = json.load(f)
    known = np.asarray(d["known"], dtype=np.float64)
    unknown = np.asarray(d["unknown"], dtype=np.float64)
    correct = np.asarray(d["knownCorrect"], dtype=bool)
    greater = (known[:, None] > unknown[None, :]).astype(np.float64)
    equal = (known[:, None] == unknown[None, :]).astype(np.float64)
    auroc = float(np.mean(greater + 0.5 * equal))
    candidates = np.unique(np.concatenate([known, unknown]))[::-1]
    tpr = np.array([np.mean(known >= t) for t in candidates])
    best = candidates[np.argmax(tpr >= 0.95)]  # the first (highest) candidate reaching 95%
    rows = []
    for t in d["thresholds"]:
        accepted = known >= t
        rows.append(
            {
                "threshold": t,
                "unknownRejectionRate": float(np.mean(unknown < t)),
                "knownRejectionRate": float(np.mean(~accepted)),
                "acceptedAccuracy": float(np.mean(correct[accepted])) if accepted.any() else None,
            }
        )
    print(json.dumps({"auroc": auroc, "fprAt95Tpr": float(np.mean(unknown >= best)), "thresholdAt95Tpr": float(best), "thresholds": rows}))


if __name__ == "__main__":
    main()
