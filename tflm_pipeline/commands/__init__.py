"""One module per CLI verb, each with one public function returning a typed result:
``train``, ``convert``, ``verify``, ``profile``, ``firmware``, ``flash``, ``report``,
``compare`` and ``doctor``.  Commands orchestrate the stage wings; no stage imports them."""
