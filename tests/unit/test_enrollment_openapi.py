from services.identity.enrollment.openapi import build_spec


def test_openapi_describes_every_json_endpoint():
    spec = build_spec().to_dict()
    assert set(spec["paths"]) == {
        "/v1/enrollments", "/v1/enrollments/verify", "/v1/activation",
        "/v1/activation/credentials", "/admin/v1/enrollments/{enrollment_id}",
        "/admin/v1/enrollments/{enrollment_id}/access-code",
        "/admin/v1/enrollments/{enrollment_id}/unlock",
        "/admin/v1/enrollments/{enrollment_id}/approve", "/admin/v1/audit"}
    enrollment = spec["components"]["schemas"]["Enrollment"]
    assert {"company", "account_numbers", "pin", "verification_word"} <= set(
        enrollment["required"])
    assert "429" in spec["paths"]["/v1/enrollments"]["post"]["responses"]
