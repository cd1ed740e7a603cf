"""AdmissionReview handling: shapes (what a review must look like), review
(parse the body, write the answer), patch (the JSON patch), handlers (pure:
request in, answer out)."""

from webhook.admission.handlers import answer_mutation, answer_validation
from webhook.admission.review import Answer, malformed_answer, parse_review, request_uid

__all__ = ["Answer", "answer_mutation", "answer_validation", "malformed_answer", "parse_review", "request_uid"]
