"""The demo's tiny instruct/thinking model pair and its benchmark, built offline on a CPU."""

from paretomerge.demo.pair import DemoPair, Measurement, build_demo_pair, measure

__all__ = ["DemoPair", "Measurement", "build_demo_pair", "measure"]
