"""matplotlib figures of the analyses. Every function takes tables (never files), accepts ``ax=None``
and returns the Axes (or the Figure, for multi-panel plots)."""
from .metrics import plot_loss_rtt, plot_smokeping
from .sizes import plot_sizes
from .sources import plot_shares
from .timing import plot_inter_arrival, plot_timeline

__all__ = ["plot_inter_arrival", "plot_timeline", "plot_loss_rtt", "plot_smokeping", "plot_shares", "plot_sizes"]
