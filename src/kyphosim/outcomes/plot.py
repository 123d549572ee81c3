"""Figure and HTML fragment of a patient's course against trial ranges (see :mod:`.analysis`)."""

from __future__ import annotations

import base64
import html
import io

from kyphosim.outcomes.analysis import MCID_NRS, TRIAL_PAIN_CHANGES, OutcomeAnalysis

__all__ = ["plot_course", "outcome_html"]

#: trial bands are drawn from this day on (pain relief mostly established by 2 weeks, Ryu 2014)
BAND_FROM_DAY = 14


def plot_course(analysis: OutcomeAnalysis, *, technique: str = "kyphoplasty", dpi: int = 110) -> bytes:
    """PNG bytes: NRS over weeks since the procedure with trial bands, and ODI when recorded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_odi = any(v.odi_pct is not None for v in analysis.visits) or analysis.baseline_odi_pct is not None
    fig, axes = plt.subplots(1, 2 if has_odi else 1, figsize=(10 if has_odi else 6.5, 4.8), squeeze=False)
    ax = axes[0][0]
    pts = [(v.day / 7.0, v.nrs) for v in analysis.visits if v.nrs is not None]
    if analysis.baseline_nrs is not None and not any(d <= 0 for d, _ in pts):
        pts = [(0.0, analysis.baseline_nrs)] + pts
    pts.sort()
    end_w = max([d for d, _ in pts] + [12.0]) + 2
    b = analysis.baseline_nrs
    if b is not None:
        def band(tech, color, label):
            ch = [c for _, t, c, _ in TRIAL_PAIN_CHANGES if t == tech]
            if ch:
                lo, hi = max(0, b + min(ch)), max(0, b + max(ch))
                ax.fill_between([BAND_FROM_DAY / 7, end_w], [lo, lo], [hi, hi], color=color, alpha=0.25, lw=0,
                                label=f"{label}: {min(ch):+.1f} to {max(ch):+.1f}")
        band(technique, "tab:green", f"trials, {'BKP' if technique == 'kyphoplasty' else 'VP'}")
        band("non-surgical", "tab:gray", "trials, non-surgical")
        ax.axhline(b - MCID_NRS, color="tab:orange", ls="--", lw=1.2,
                   label=f"baseline − {MCID_NRS:g} (VERTOS IV)")
        ax.axvline(6, color="0.6", ls=":", lw=1)
    if pts:
        ax.plot([d for d, _ in pts], [n for _, n in pts], "o-", color="tab:blue", lw=2, label="patient")
    for v in analysis.visits:
        if v.new_fracture:
            ax.plot(v.day / 7.0, v.nrs if v.nrs is not None else 9.5, "X", color="tab:red", ms=12,
                    label="new fracture")
    ax.set_xlim(-0.5, end_w)
    ax.set_ylim(0, 10.2)
    ax.set_xlabel("weeks since procedure")
    ax.set_ylabel("pain (NRS 0–10)")
    ax.set_title("Pain course vs trial pooled changes")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2,
              frameon=False)
    ax.grid(alpha=0.3)
    if has_odi:
        ax2 = axes[0][1]
        op = [(v.day / 7.0, v.odi_pct) for v in analysis.visits if v.odi_pct is not None]
        if analysis.baseline_odi_pct is not None and not any(d <= 0 for d, _ in op):
            op = [(0.0, analysis.baseline_odi_pct)] + op
        op.sort()
        ax2.plot([d for d, _ in op], [o for _, o in op], "s-", color="tab:purple", lw=2)
        ax2.set_ylim(0, 100)
        ax2.set_xlim(-0.5, end_w)
        ax2.set_xlabel("weeks since procedure")
        ax2.set_ylabel("Oswestry Disability Index (%)")
        ax2.set_title("Disability course")
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def outcome_html(analysis: OutcomeAnalysis, *, png: bytes | None = None) -> str:
    """HTML fragment (``<section class="kyphosim-outcomes">``): figure (embedded), visit table, flags."""
    e = html.escape
    png = png if png is not None else plot_course(analysis)
    img = base64.b64encode(png).decode()
    rows = "".join(
        f"<tr><td>{v.date.isoformat()}</td><td>{v.day}</td><td>{'' if v.nrs is None else f'{v.nrs:g}'}</td>"
        f"<td>{'' if v.nrs_change is None else f'{v.nrs_change:+.1f}'}</td>"
        f"<td>{'' if v.odi_pct is None else f'{v.odi_pct:g}'}</td>"
        f"<td>{'' if v.odi_change is None else f'{v.odi_change:+.0f}'}</td>"
        f"<td>{'yes' if v.new_fracture else ''}</td></tr>" for v in analysis.visits)
    flags = "".join(f"<li><b>{e(f.kind.replace('_', ' '))}</b>: {e(f.message)} <small>({e(f.source)})</small></li>"
                    for f in analysis.flags) or "<li>No flags.</li>"
    return ('<section class="kyphosim-outcomes"><h2>Follow-up outcomes</h2>'
            f'<img alt="pain and disability course" style="max-width:100%" src="data:image/png;base64,{img}">'
            '<table style="border-collapse:collapse"><thead><tr><th>date</th><th>day</th><th>NRS</th><th>ΔNRS</th>'
            f"<th>ODI %</th><th>ΔODI</th><th>new fracture</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<h3>Flags</h3><ul>{flags}</ul></section>")
