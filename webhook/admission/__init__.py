"""AdmissionReview handling: shapes (what a review must look like), envelope
(parse the body, the named answers, write the answer), patch (the JSON patch),
handlers (pure: request in, answer out), validating (the /validate review)."""

from webhook.admission.handlers import answer_mutation, answer_validation
from webhook.admission.envelope import Answer, parse_review, request_uid

__all__ = ["Answer", "answer_mutation", "answer_validation", "parse_review", "request_uid"]
