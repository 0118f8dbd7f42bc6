;; Attention of a few queries of one sequence over its blocks of the paged KV cache, read in
;; place: no gather copy, one pass over the keys and one over the values per head. Decoding
;; (one query per sequence) is bound by reading the cache, and ONNX Runtime's graph first
;; copies a sequence's blocks out of the pool, then packs them again for its GEMM. Queries
;; are taken one at a time, so for prompt chunks ONNX Runtime's GEMM is the faster path.
;;
;; Pointers are byte offsets into the imported memory, which holds the pool's planes and the
;; caller's scratch. A plane is [kvHeads, numBlocks, blockSize, rowFloats] (kv-cache.ts).
;; Query i of `queries` sits at position start + i and sees positions [0, start + i] (causal).
;; Query head h reads kv head h / group. keyDim and valueDim must be multiples of 4 (one
;; 4-lane vector); rows are read 16 floats a step, then 4 at a time. A value row may be a
;; prefix of a wider row: MLA reads its values from the first kvLoraRank entries of the
;; latent key rows (vRowBytes is the row's width).
(module
  (import "env" "memory" (memory 1))

  ;; e^x for x <= 0 in four lanes: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor
  ;; polynomial (relative error below 2e-7), 2^n built in the exponent bits. Inputs below -87
  ;; are clamped so 2^n stays a normal float: their weight (< 2e-38) is nil next to the max's 1.
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.max (local.get $x) (f32x4.splat (f32.const -87.0))))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) (f32x4.splat (f32.const 1.44269504)))))
    ;; ln2 in two parts, so n * ln2 loses no bits against x
    (local.set $r (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693359375)))))
    (local.set $r (f32x4.add (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 2.12194440e-4)))))
    (local.set $p (f32x4.splat (f32.const 1.98412698e-4)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.38888889e-3))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 8.33333333e-3))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 4.16666667e-2))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 0.166666667))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 0.5))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.0))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.0))))
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127))) (i32.const 23))))

  ;; scores[t] = scale * q . k_t for t in [0, len); returns the largest.
  (func $scores (param $q i32) (param $k i32) (param $table i32) (param $len i32) (param $rowBytes i32)
    (param $blockBytes i32) (param $bs i32) (param $scale f32) (param $scores i32) (result f32)
    (local $t i32) (local $blk i32) (local $r i32) (local $row i32) (local $i i32) (local $s f32) (local $max f32) (local $whole i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $max (f32.const -inf))
    ;; bytes of a row covered by whole 16-float steps
    (local.set $whole (i32.and (local.get $rowBytes) (i32.const -64)))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $t) (local.get $len)))
      (local.set $row (i32.add (local.get $k)
        (i32.mul (i32.load (i32.add (local.get $table) (i32.shl (local.get $blk) (i32.const 2)))) (local.get $blockBytes))))
      (local.set $r (i32.const 0))
      (block $block_done (loop $rows
        (br_if $block_done (i32.or (i32.ge_u (local.get $r) (local.get $bs)) (i32.ge_u (local.get $t) (local.get $len))))
        (local.set $a0 (v128.const f32x4 0 0 0 0)) (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0)) (local.set $a3 (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $dot_done (loop $dot
          (br_if $dot_done (i32.ge_u (local.get $i) (local.get $whole)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul
            (v128.load (i32.add (local.get $q) (local.get $i))) (v128.load (i32.add (local.get $row) (local.get $i))))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul
            (v128.load offset=16 (i32.add (local.get $q) (local.get $i))) (v128.load offset=16 (i32.add (local.get $row) (local.get $i))))))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul
            (v128.load offset=32 (i32.add (local.get $q) (local.get $i))) (v128.load offset=32 (i32.add (local.get $row) (local.get $i))))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul
            (v128.load offset=48 (i32.add (local.get $q) (local.get $i))) (v128.load offset=48 (i32.add (local.get $row) (local.get $i))))))
          (local.set $i (i32.add (local.get $i) (i32.const 64)))
          (br $dot)))
        (block $dot_tail_done (loop $dot_tail
          (br_if $dot_tail_done (i32.ge_u (local.get $i) (local.get $rowBytes)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul
            (v128.load (i32.add (local.get $q) (local.get $i))) (v128.load (i32.add (local.get $row) (local.get $i))))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $dot_tail)))
        (local.set $a0 (f32x4.add (f32x4.add (local.get $a0) (local.get $a1)) (f32x4.add (local.get $a2) (local.get $a3))))
        (local.set $s (f32.mul (local.get $scale) (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $a0)) (f32x4.extract_lane 1 (local.get $a0)))
          (f32.add (f32x4.extract_lane 2 (local.get $a0)) (f32x4.extract_lane 3 (local.get $a0))))))
        (f32.store (i32.add (local.get $scores) (i32.shl (local.get $t) (i32.const 2))) (local.get $s))
        (local.set $max (f32.max (local.get $max) (local.get $s)))
        (local.set $row (i32.add (local.get $row) (local.get $rowBytes)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $rows)))
      (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
      (br $blocks)))
    (local.get $max))

  ;; scores[t] = e^(scores[t] - max) in place; returns their sum.
  (func $softmax_numerators (param $scores i32) (param $len i32) (param $max f32) (result f32)
    (local $t i32) (local $at i32) (local $e v128) (local $sum v128) (local $m v128) (local $tail f32) (local $whole i32)
    (local.set $m (f32x4.splat (local.get $max)))
    (local.set $whole (i32.and (local.get $len) (i32.const -4)))
    (block $done (loop $fours
      (br_if $done (i32.ge_u (local.get $t) (local.get $whole)))
      (local.set $at (i32.add (local.get $scores) (i32.shl (local.get $t) (i32.const 2))))
      (local.set $e (call $exp4 (f32x4.sub (v128.load (local.get $at)) (local.get $m))))
      (v128.store (local.get $at) (local.get $e))
      (local.set $sum (f32x4.add (local.get $sum) (local.get $e)))
      (local.set $t (i32.add (local.get $t) (i32.const 4)))
      (br $fours)))
    (block $tail_done (loop $tail_loop
      (br_if $tail_done (i32.ge_u (local.get $t) (local.get $len)))
      (local.set $at (i32.add (local.get $scores) (i32.shl (local.get $t) (i32.const 2))))
      (local.set $tail (f32x4.extract_lane 0 (call $exp4 (f32x4.splat (f32.sub (f32.load (local.get $at)) (local.get $max))))))
      (f32.store (local.get $at) (local.get $tail))
      (local.set $sum (f32x4.add (local.get $sum) (f32x4.replace_lane 0 (v128.const f32x4 0 0 0 0) (local.get $tail))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $tail_loop)))
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $sum)) (f32x4.extract_lane 1 (local.get $sum)))
      (f32.add (f32x4.extract_lane 2 (local.get $sum)) (f32x4.extract_lane 3 (local.get $sum)))))

  ;; out[0, valueBytes) = (sum_t weights[t] v_t) * norm: the value rows in one sequential pass,
  ;; accumulated in `out` itself (an L1-resident row) so any valueDim needs no registers.
  (func $weighted_values (param $out i32) (param $v i32) (param $table i32) (param $len i32) (param $valueBytes i32)
    (param $rowBytes i32) (param $blockBytes i32) (param $bs i32) (param $weights i32) (param $norm f32)
    (local $t i32) (local $blk i32) (local $r i32) (local $row i32) (local $c i32) (local $o i32) (local $w v128) (local $whole i32)
    (local.set $whole (i32.and (local.get $valueBytes) (i32.const -64)))
    (loop $zero
      (v128.store (i32.add (local.get $out) (local.get $c)) (v128.const f32x4 0 0 0 0))
      (local.set $c (i32.add (local.get $c) (i32.const 16)))
      (br_if $zero (i32.lt_u (local.get $c) (local.get $valueBytes))))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $t) (local.get $len)))
      (local.set $row (i32.add (local.get $v)
        (i32.mul (i32.load (i32.add (local.get $table) (i32.shl (local.get $blk) (i32.const 2)))) (local.get $blockBytes))))
      (local.set $r (i32.const 0))
      (block $block_done (loop $rows
        (br_if $block_done (i32.or (i32.ge_u (local.get $r) (local.get $bs)) (i32.ge_u (local.get $t) (local.get $len))))
        (local.set $w (v128.load32_splat (i32.add (local.get $weights) (i32.shl (local.get $t) (i32.const 2)))))
        (local.set $c (i32.const 0))
        (block $cols_done (loop $cols
          (br_if $cols_done (i32.ge_u (local.get $c) (local.get $whole)))
          (local.set $o (i32.add (local.get $out) (local.get $c)))
          (v128.store (local.get $o) (f32x4.add (v128.load (local.get $o))
            (f32x4.mul (local.get $w) (v128.load (i32.add (local.get $row) (local.get $c))))))
          (v128.store offset=16 (local.get $o) (f32x4.add (v128.load offset=16 (local.get $o))
            (f32x4.mul (local.get $w) (v128.load offset=16 (i32.add (local.get $row) (local.get $c))))))
          (v128.store offset=32 (local.get $o) (f32x4.add (v128.load offset=32 (local.get $o))
            (f32x4.mul (local.get $w) (v128.load offset=32 (i32.add (local.get $row) (local.get $c))))))
          (v128.store offset=48 (local.get $o) (f32x4.add (v128.load offset=48 (local.get $o))
            (f32x4.mul (local.get $w) (v128.load offset=48 (i32.add (local.get $row) (local.get $c))))))
          (local.set $c (i32.add (local.get $c) (i32.const 64)))
          (br $cols)))
        (block $cols_tail_done (loop $cols_tail
          (br_if $cols_tail_done (i32.ge_u (local.get $c) (local.get $valueBytes)))
          (local.set $o (i32.add (local.get $out) (local.get $c)))
          (v128.store (local.get $o) (f32x4.add (v128.load (local.get $o))
            (f32x4.mul (local.get $w) (v128.load (i32.add (local.get $row) (local.get $c))))))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br $cols_tail)))
        (local.set $row (i32.add (local.get $row) (local.get $rowBytes)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $rows)))
      (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
      (br $blocks)))
    (local.set $c (i32.const 0))
    (loop $normalise
      (local.set $o (i32.add (local.get $out) (local.get $c)))
      (v128.store (local.get $o) (f32x4.mul (v128.load (local.get $o)) (f32x4.splat (local.get $norm))))
      (local.set $c (i32.add (local.get $c) (i32.const 16)))
      (br_if $normalise (i32.lt_u (local.get $c) (local.get $valueBytes)))))

  ;; q [queries, heads, keyDim] -> out [queries, heads, valueDim]. kHeadStride / vHeadStride are
  ;; the bytes between kv heads in the planes; scores is scratch for start + queries floats.
  (func (export "attend")
    (param $q i32) (param $out i32) (param $k i32) (param $v i32) (param $table i32)
    (param $start i32) (param $queries i32) (param $heads i32) (param $group i32)
    (param $keyDim i32) (param $valueDim i32) (param $vRowBytes i32)
    (param $kHeadStride i32) (param $vHeadStride i32) (param $bs i32) (param $scale f32) (param $scores i32)
    (local $i i32) (local $h i32) (local $len i32) (local $kv i32) (local $qh i32) (local $oh i32)
    (local $keyBytes i32) (local $valueBytes i32) (local $max f32) (local $sum f32)
    (local.set $keyBytes (i32.shl (local.get $keyDim) (i32.const 2)))
    (local.set $valueBytes (i32.shl (local.get $valueDim) (i32.const 2)))
    (block $done (loop $each_query
      (br_if $done (i32.ge_u (local.get $i) (local.get $queries)))
      (local.set $len (i32.add (i32.add (local.get $start) (local.get $i)) (i32.const 1)))
      (local.set $h (i32.const 0))
      (loop $each_head
        (local.set $kv (i32.div_u (local.get $h) (local.get $group)))
        (local.set $qh (i32.add (local.get $q)
          (i32.mul (i32.add (i32.mul (local.get $i) (local.get $heads)) (local.get $h)) (local.get $keyBytes))))
        (local.set $oh (i32.add (local.get $out)
          (i32.mul (i32.add (i32.mul (local.get $i) (local.get $heads)) (local.get $h)) (local.get $valueBytes))))
        (local.set $max (call $scores (local.get $qh) (i32.add (local.get $k) (i32.mul (local.get $kv) (local.get $kHeadStride)))
          (local.get $table) (local.get $len) (local.get $keyBytes) (i32.mul (local.get $keyBytes) (local.get $bs))
          (local.get $bs) (local.get $scale) (local.get $scores)))
        (local.set $sum (call $softmax_numerators (local.get $scores) (local.get $len) (local.get $max)))
        (call $weighted_values (local.get $oh) (i32.add (local.get $v) (i32.mul (local.get $kv) (local.get $vHeadStride)))
          (local.get $table) (local.get $len) (local.get $valueBytes) (local.get $vRowBytes)
          (i32.mul (local.get $vRowBytes) (local.get $bs)) (local.get $bs) (local.get $scores)
          (f32.div (f32.const 1) (local.get $sum)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br_if $each_head (i32.lt_u (local.get $h) (local.get $heads))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each_query)))))
