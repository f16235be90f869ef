"""Who may do what: the CA and enrolment of gateways, API tokens."""
