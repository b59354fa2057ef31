"""Tuning on evidence: the corrections browser, offline evaluation of a prompt
version on the gold set (reviewed items) and threshold calibration. Reads
review's decisions and corrections and annotator's prompt versions; the
prompt versions themselves (and their activation) are annotator's.

Pages live under /prompts/ (tuning.urls), for taxonomy admins and managers."""
