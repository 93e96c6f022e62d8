# Tests of queue/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_intent_id onsale_queue)
onsale_integration(test_status onsale_queue)
onsale_pytest(it_pipeline test_pipeline.py)
