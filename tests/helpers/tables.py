"""Compare two packets tables column by column (NA equal to NA, categories by value)."""
from __future__ import annotations

import pandas as pd


def table_diffs(a: pd.DataFrame, b: pd.DataFrame, skip=()) -> list[str]:
    if len(a) != len(b):
        return [f"row count {len(a)} vs {len(b)}"]
    out = []
    for c in a.columns:
        if c in skip:
            continue
        x = a[c].astype(object).where(a[c].notna(), None).tolist()
        y = b[c].astype(object).where(b[c].notna(), None).tolist()
        bad = [i for i, (u, v) in enumerate(zip(x, y)) if u != v]
        if bad:
            out.append(f"{c}: {len(bad)} rows, first frame {bad[0] + 1}: {x[bad[0]]!r} vs {y[bad[0]]!r}")
    return out
