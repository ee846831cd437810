"""jieba's default segmentation (`jieba.lcut(text)`, HMM on), returned as word lengths, about twice as fast.

Whole-word masking needs only where each jieba word starts, and jieba's pure-Python cut spends most of its time
building tuples, generators and dicts it throws away. `word_lengths(text)` runs the same algorithm and returns
`[len(w) for w in jieba.lcut(text)]`, the same list for every text:
- the same block split (`jieba.re_han_default`, then `re_skip_default` for what lies between Han blocks: each
  whitespace run of that pattern is one word, every other character its own word);
- in a Han block, jieba's DAG and maximum-probability route in one backward pass, on the live prefix dictionary
  (`tokenizer.FREQ`, so words added or deleted with jieba's own functions count): each candidate's score is
  `(log(freq) - log(total)) + route`, the same float operations in the same order, and ties go to the longer word
  as `max` over (score, end) tuples does;
- runs of single-character words not in the dictionary go through jieba's HMM (finalseg): its Viterbi over the same
  tables with the same tie rule, backtracked instead of copying paths; with `jieba.finalseg.Force_Split_Words` set
  it calls finalseg itself.
tests/test_jieba_lengths.py checks equality with jieba.lcut on ../shared/data Chinese text, random mixed-script
strings and a tokenizer with user words added and deleted.
"""
from math import log

from .words import load_jieba

_log_of = {}  # (total, freq) -> log(freq) - log(total), filled as frequencies are met


def word_lengths(text, tokenizer=None):
    """[len(w) for w in tokenizer.lcut(text)] (default tokenizer: jieba's own `jieba.dt`)."""
    jieba = load_jieba()
    dt = tokenizer or jieba.dt
    dt.check_initialized()
    re_han, re_skip = jieba.re_han_default, jieba.re_skip_default
    out = []
    for blk in re_han.split(text):
        if not blk:
            continue
        if re_han.match(blk):
            _han_block(blk, dt, out)
        else:
            for x in re_skip.split(blk):
                if re_skip.match(x):
                    out.append(len(x))
                elif x:
                    out.extend([1] * len(x))
    return out


def _han_block(s, dt, out):
    """Word lengths of one Han block: jieba's get_DAG + calc + __cut_DAG (HMM on)."""
    n = len(s)
    logtotal = log(dt.total)
    logs = _log_of.setdefault(dt.total, {})
    unknown = log(1) - logtotal  # a character with no dictionary word starting at it
    freq = dt.FREQ.get
    score = [0.0] * (n + 1)
    end = list(range(n + 1))  # last character of the route's word starting at each position
    for k in range(n - 1, -1, -1):
        best = None
        i = k
        f = freq(s[k])
        while f is not None:  # frag s[k:i+1] is a dictionary prefix
            if f:
                g = logs.get(f)
                if g is None:
                    g = logs[f] = log(f) - logtotal
                c = g + score[i + 1]
                if best is None or c >= best:  # ties: the later end, as max over (score, end) tuples
                    best, bx = c, i
            i += 1
            if i >= n:
                break
            f = freq(s[k:i + 1])
        if best is None:
            score[k] = unknown + score[k + 1]
        else:
            score[k], end[k] = best, bx
    x, buf = 0, -1  # buf: where the current run of single-character words began
    while x < n:
        y = end[x] + 1
        if y - x == 1:
            if buf < 0:
                buf = x
        else:
            if buf >= 0:
                _single_run(s[buf:x], dt, out)
                buf = -1
            out.append(y - x)
        x = y
    if buf >= 0:
        _single_run(s[buf:n], dt, out)


def _single_run(buf, dt, out):
    if len(buf) == 1:
        out.append(1)
    elif dt.FREQ.get(buf):
        out.extend([1] * len(buf))
    else:
        _finalseg(buf, out)


def _finalseg(buf, out):
    """Word lengths of jieba.finalseg.cut(buf)."""
    from jieba import finalseg
    if finalseg.Force_Split_Words:
        out.extend(map(len, finalseg.cut(buf)))
        return
    for blk in finalseg.re_han.split(buf):
        if finalseg.re_han.match(blk):
            _viterbi(blk, finalseg, out)
        else:
            out.extend(len(x) for x in finalseg.re_skip.split(blk) if x)


def _viterbi(obs, finalseg, out):
    """Word lengths of finalseg's __cut: Viterbi over states B, M, E, S with finalseg's tables."""
    low = finalseg.MIN_FLOAT
    start, trans, emit = finalseg.start_P, finalseg.trans_P, finalseg.emit_P
    e_b, e_m, e_e, e_s = emit["B"], emit["M"], emit["E"], emit["S"]
    t_eb, t_sb = trans["E"].get("B", low), trans["S"].get("B", low)
    t_mm, t_bm = trans["M"].get("M", low), trans["B"].get("M", low)
    t_ss, t_es = trans["S"].get("S", low), trans["E"].get("S", low)
    t_be, t_me = trans["B"].get("E", low), trans["M"].get("E", low)
    c = obs[0]
    v_b, v_m = start["B"] + e_b.get(c, low), start["M"] + e_m.get(c, low)
    v_e, v_s = start["E"] + e_e.get(c, low), start["S"] + e_s.get(c, low)
    back = []  # per step: the previous state chosen for B, M, E, S
    # each state has two predecessors (finalseg.PrevStatus); max over (prob, state) tuples breaks a tie by the
    # later letter, so on a tie E beats S (for B), M beats B (for M), S beats E (for S), M beats B (for E)
    for c in obs[1:]:
        em = e_b.get(c, low)
        a, b = v_e + t_eb + em, v_s + t_sb + em
        n_b, p_b = (b, "S") if b >= a else (a, "E")
        em = e_m.get(c, low)
        a, b = v_m + t_mm + em, v_b + t_bm + em
        n_m, p_m = (a, "M") if a >= b else (b, "B")
        em = e_s.get(c, low)
        a, b = v_s + t_ss + em, v_e + t_es + em
        n_s, p_s = (a, "S") if a >= b else (b, "E")
        em = e_e.get(c, low)
        a, b = v_b + t_be + em, v_m + t_me + em
        n_e, p_e = (b, "M") if b >= a else (a, "B")
        v_b, v_m, v_s, v_e = n_b, n_m, n_s, n_e
        back.append({"B": p_b, "M": p_m, "E": p_e, "S": p_s})
    state = "S" if v_s >= v_e else "E"
    n = len(obs)
    states = [state] * n
    for t in range(n - 1, 0, -1):
        state = states[t - 1] = back[t - 1][state]
    begin = nexti = 0
    for i, p in enumerate(states):
        if p == "B":
            begin = i
        elif p == "E":
            out.append(i + 1 - begin)
            nexti = i + 1
        elif p == "S":
            out.append(1)
            nexti = i + 1
    if nexti < n:
        out.append(n - nexti)
