"""The preset deflate dictionary of manifest coding 2 (docs/format.md, "Manifest coding").

A manifest of a small model is mostly first occurrences of the same JSON keys and codec
names, which plain deflate has to spell out once per file (about 250 of LeNet-5's 580
deflated bytes). Coding 2 deflates the manifest against these bytes instead, so those first
occurrences become back-references. The bytes are part of the file format: a file written
with coding 2 decodes only with exactly this dictionary (its sha256 is pinned in
tests/codecs/test_container.py). Never edit it; a better dictionary is a new coding number.
"""

from __future__ import annotations

MANIFEST_DICTIONARY_2 = (
    b'"codec":"fp16","params":{},"codec":"res_fp16","codec":"res_int","codec":"pu_delta",'
    b'"codec":"res_grid","params":{"step_exp":-20,"level_bits":16},"chunks":[{"kind":"symbols",'
    b'"bytes":},{"kind":"bits","bytes":},{"kind":"escapes","bytes":0,"crc32":0}]},'
    b'"granularity":"channel","coder":"huffman","coder":"fixed","codebook_dtype":"fp16",'
    b'{"name":"layer1.0.bn1.num_batches_tracked","shape":[],"dtype":"int64","codec":"raw",'
    b'"params":{},"chunks":[{"kind":"data","bytes":8,"crc32":'
    b'{"name":"layer1.0.bn1.running_mean","shape":[16],"dtype":"float32","codec":"raw",'
    b'"params":{},"chunks":[{"kind":"data","bytes":64,"crc32":'
    b'}]},{"name":"layer1.0.bn1.running_var","shape":[16],"dtype":"float32","codec":"raw",'
    b'"params":{},"chunks":[{"kind":"data","bytes":64,"crc32":'
    b'{"network":"lenet300_fashionmnist","meta":{"granularity":"layer","init":"best","seed":0,'
    b'"coder":"ans","codebook_dtype":"fp32"},"tensors":['
    b'{"name":"conv1.weight","shape":[16,1,3,3],"dtype":"float32","codec":"shared","params":'
    b'{"k":16,"k_eff":16,"groups":1,"granularity":"layer","codebook_dtype":"fp32","coder":"ans"},'
    b'"chunks":[{"kind":"codebook","bytes":64,"crc32":'
    b'},{"kind":"indices","bytes":'
    b'{"network":"lenet5_fashionmnist","meta":{},"tensors":['
    b'{"name":"fc1.bias","shape":[120],"dtype":"float16","codec":"raw","params":{},'
    b'"chunks":[{"kind":"data","bytes":240,"crc32":'
    b'}]},{"name":"fc1.weight","shape":[120,400],"dtype":"float32","codec":"sparse_shared",'
    b'"params":{"k":16,"k_eff":16,"nnz":'
    b',"positions":"bitmap","codebook_dtype":"fp16","coder":"ans"},'
    b'"chunks":[{"kind":"codebook","bytes":32,"crc32":'
    b',"positions":"gaps","gap_bits":1,"symbols":'
    b',"codebook_dtype":"fp16","coder":"ans"},"chunks":[{"kind":"codebook","bytes":32,"crc32":'
    b'},{"kind":"positions","bytes":'
    b'},{"kind":"indices","bytes":'
    b"}]}]}"
)
"""The dictionary: JSON fragments of the manifests this project writes, the most frequent last
(deflate reaches them with the shortest distances)."""
