# Tests of ingress/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
