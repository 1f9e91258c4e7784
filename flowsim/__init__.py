"""flowsim: a discrete-event simulation of patient flow across a local health and care system."""

__version__ = "0.1.0"
