"""kyphosim: balloon kyphoplasty in software — assess, decide, plan, simulate, strength, care, report.

Research software, not a medical device.
"""

__version__ = "0.1.0"
RESEARCH_NOTICE = (
    "kyphosim is research software. It is not a medical device and must not be used for diagnosis, "
    "treatment decisions or patient care."
)
