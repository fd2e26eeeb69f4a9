"""Pure admission logic: an AdmissionReview in, a decision and a JSON patch out."""
