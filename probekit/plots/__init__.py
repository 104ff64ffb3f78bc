"""matplotlib figures of the analyses. Every function takes tables (never files) and returns what it drew
on: single-panel plots accept ``ax=None`` and return the Axes; the multi-panel ones (``plot_loss_rtt``,
``plot_inter_arrival``) accept ``fig=None`` and return the Figure."""
from .cloudwatch import plot_cloudwatch_audit
from .metrics import plot_loss_rtt, plot_smokeping
from .mtu import plot_mtu
from .payload import plot_byte_histogram, plot_entropy, plot_payload_raster
from .sizes import plot_sizes
from .sources import plot_shares
from .tcp import plot_ladder, plot_rst_delay
from .timing import plot_inter_arrival, plot_timeline

__all__ = ["plot_inter_arrival", "plot_timeline", "plot_loss_rtt", "plot_smokeping", "plot_shares", "plot_sizes",
           "plot_byte_histogram", "plot_entropy", "plot_payload_raster", "plot_ladder", "plot_rst_delay",
           "plot_cloudwatch_audit", "plot_mtu"]
