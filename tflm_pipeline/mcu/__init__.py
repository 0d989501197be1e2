"""What microcontrollers and TFLM releases need: the releases and their op sets
(``releases``), the 32-bit arena (``arena``), targets and boards (``targets``,
``boards``), latency bands (``latency``), a model's profile across every board
(``device_profile``), build and upload command lines (``toolchains``) and the compile
and QEMU check of generated projects (``build_check``)."""
