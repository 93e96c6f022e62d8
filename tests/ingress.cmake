# Tests of ingress/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_ingress_json onsale_ingress)
onsale_pytest(it_ingress_http test_ingress_http.py)
onsale_pytest(it_ingress_worker test_ingress_worker.py)
