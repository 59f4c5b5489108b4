"""GP Connect Appointment Management 1.2.7 consumer (FHIR STU3 over the Spine Secure Proxy)."""
