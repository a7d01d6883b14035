"""Preprocessing recipes on the real raw samples in ../shared/data.

The SR-GNN recipe is checked against an independent, line-by-line re-reading of SR-GNN's
preprocess.py logic (dicts over the csv rows, as the script does); the counts after each
step were checked by hand against that and are pinned below.
"""

import calendar
import csv
import itertools
import time
from collections import Counter

import pandas as pd
import pytest

from bench.data import raw, recipes
from bench.data.io import ITEM, SESSION, TIME

pytestmark = pytest.mark.real_data


def sessions_in_order(df):
    return [list(g) for _, g in df.groupby(SESSION, sort=False)[ITEM]]


def srgnn_by_the_script(path, dataset):
    """SR-GNN's datasets/preprocess.py steps, re-expressed with plain dicts (UTC dates)."""
    clicks, dates, cur, cur_date = {}, {}, None, None
    with open(path) as f:
        reader = csv.DictReader(
            f,
            delimiter=";" if dataset == "diginetica" else ",",
            fieldnames=None
            if dataset == "diginetica"
            else ["session_id", "timestamp", "item_id", "cat"],
        )
        for row in reader:
            sid = row["session_id"]
            if cur_date is not None and cur != sid:
                dates[cur] = cur_date
            cur = sid
            item = (
                (row["item_id"], int(row["timeframe"]))
                if dataset == "diginetica"
                else row["item_id"]
            )
            if dataset == "diginetica":
                cur_date = calendar.timegm(time.strptime(row["eventdate"], "%Y-%m-%d"))
            else:
                cur_date = calendar.timegm(
                    time.strptime(row["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
                )
            clicks.setdefault(sid, []).append(item)
        dates[cur] = cur_date
    if dataset == "diginetica":
        clicks = {s: [c[0] for c in sorted(v, key=lambda c: c[1])] for s, v in clicks.items()}
    clicks = {s: v for s, v in clicks.items() if len(v) > 1}
    counts = {}
    for v in clicks.values():
        for i in v:
            counts[i] = counts.get(i, 0) + 1
    clicks = {s: [i for i in v if counts[i] >= 5] for s, v in clicks.items()}
    clicks = {s: v for s, v in clicks.items() if len(v) >= 2}
    dated = [(s, d) for s, d in dates.items() if s in clicks]
    split = max(d for _, d in dated) - 86400 * (7 if dataset == "diginetica" else 1)
    train = sorted([x for x in dated if x[1] < split], key=lambda x: x[1])
    test = sorted([x for x in dated if x[1] > split], key=lambda x: x[1])
    known = {i for s, _ in train for i in clicks[s]}
    train_seqs = [clicks[s] for s, _ in train]
    test_seqs = [[i for i in clicks[s] if i in known] for s, _ in test]
    return train_seqs, [t for t in test_seqs if len(t) >= 2]


@pytest.mark.parametrize(
    "dataset, rel, reader",
    [
        (
            "diginetica",
            "diginetica/raw_sample/train-item-views.sample.csv",
            raw.read_diginetica_views,
        ),
        (
            "yoochoose",
            "yoochoose/raw_sample/yoochoose-clicks.sample.dat",
            raw.read_yoochoose_clicks,
        ),
    ],
)
def test_srgnn_recipe_matches_the_script_logic(shared_data, dataset, rel, reader):
    parts, _ = recipes.srgnn(reader(shared_data / rel), dataset)
    train, test = srgnn_by_the_script(shared_data / rel, dataset)
    assert sessions_in_order(parts["train"]) == train
    assert sessions_in_order(parts["test"]) == test


def test_srgnn_recipe_counts_on_the_diginetica_sample(shared_data):
    df = raw.read_diginetica_views(
        shared_data / "diginetica/raw_sample/train-item-views.sample.csv"
    )
    parts, steps = recipes.srgnn(df, "diginetica")
    counts = [(s["events"], s["sessions"]) for s in steps]
    # 12,391 rows / 2,986 sessions; 933 single-click sessions go; items seen < 5 times leave
    # 2,233 clicks; sessions left with one click go; then the 7-day date split.
    assert counts[:4] == [(12391, 2986), (11458, 2053), (2233, 881), (1877, 525)]
    assert counts[4:6] == [(1674, 469), (138, 39)]
    # The boundary: train sessions are dated before maxdate - 7 days, test sessions after.
    train_dates = parts["train"].groupby(SESSION)[TIME].min() // 1
    test_dates = parts["test"].groupby(SESSION)[TIME].min() // 1
    split = test_dates.max() - 7 * 86400
    assert train_dates.max() < split < test_dates.min()


def test_srgnn_yoochoose_fraction_keeps_the_newest_samples(shared_data):
    df = raw.read_yoochoose_clicks(shared_data / "yoochoose/raw_sample/yoochoose-clicks.sample.dat")
    full, _ = recipes.srgnn(df, "yoochoose")
    part, _ = recipes.srgnn(df, "yoochoose", fraction=4)
    samples = len(full["train"]) - full["train"][SESSION].nunique()
    kept = len(part["train"]) - part["train"][SESSION].nunique()
    assert kept == samples // 4  # int(P / 4) (prefix, next item) samples
    newest = sessions_in_order(full["train"])[-3:]
    assert sessions_in_order(part["train"])[-3:] == newest  # the newest sessions, whole
    # The oldest kept session is cut to a prefix of itself.
    first = sessions_in_order(part["train"])[0]
    match = [s for s in sessions_in_order(full["train"]) if s[: len(first)] == first]
    assert match
    assert part["test"].equals(full["test"])


def test_rsc15_recipe_on_the_yoochoose_sample(shared_data):
    df = raw.read_yoochoose_clicks(shared_data / "yoochoose/raw_sample/yoochoose-clicks.sample.dat")
    parts, steps = recipes.rsc15(df)
    counts = [(s["step"], s["events"], s["sessions"]) for s in steps]
    assert counts[:4] == [
        ("raw", 1913, 461),
        ("sessions of length > 1", 1883, 431),
        ("items with support >= 5", 657, 249),
        ("sessions of length >= 2", 591, 183),
    ]
    train, test = parts["train"], parts["test"]
    # No dedup in RSC15: consecutive repeats survive.
    s, i = train[SESSION].to_numpy(), train[ITEM].to_numpy()
    assert ((s[1:] == s[:-1]) & (i[1:] == i[:-1])).any()
    # Split boundary: a session is test iff its last click is within a day of the end.
    tmax = max(train[TIME].max(), test[TIME].max())
    assert (train.groupby(SESSION)[TIME].max() < tmax - 86400).all()
    assert (test.groupby(SESSION)[TIME].max() >= tmax - 86400).all()
    assert set(test[ITEM]) <= set(train[ITEM]) and test.groupby(SESSION).size().min() >= 2


@pytest.mark.parametrize(
    "rel, reader, window, tsplit, dedup",
    [
        (
            "diginetica/raw_sample/train-item-views.sample.csv",
            raw.read_diginetica_views,
            7,
            None,
            841,
        ),
        (
            "yoochoose/raw_sample/yoochoose-clicks.sample.dat",
            raw.read_yoochoose_clicks,
            1,
            None,
            319,
        ),
        (
            "retailrocket/sessionized_sample/retailrocket-sessions.sample.tsv",
            raw.read_retailrocket_sessions,
            7,
            1442545200,
            1886,
        ),
    ],
)
def test_official_recipe_dedups_filters_to_a_fixpoint_and_splits(
    shared_data, rel, reader, window, tsplit, dedup
):
    df = reader(shared_data / rel)
    parts, steps = recipes.official(df, window, tsplit)
    assert steps[0]["events"] - steps[1]["events"] == dedup  # repeats of the previous item
    # The same count by a plain loop over the rows sorted by (session, time, item).
    rows = sorted(zip(df[SESSION].astype(int), df[TIME], df[ITEM].astype(int)))
    assert sum(a[0] == b[0] and a[2] == b[2] for a, b in itertools.pairwise(rows)) == dedup
    # Then the fixpoint, again by plain loops: drop 1-click sessions and rare items until stable.
    kept = [
        r
        for k, r in enumerate(rows)
        if k == 0 or not (rows[k - 1][0] == r[0] and rows[k - 1][2] == r[2])
    ]
    while True:
        n = len(kept)
        length = Counter(r[0] for r in kept)
        kept = [r for r in kept if length[r[0]] > 1]
        support = Counter(r[2] for r in kept)
        kept = [r for r in kept if support[r[2]] >= 5]
        if len(kept) == n:
            break
    assert (steps[2]["events"], steps[2]["sessions"]) == (len(kept), len({r[0] for r in kept}))
    full = pd_concat_unique(parts["train"], parts["test"])
    assert parts["train"].groupby(SESSION).size().min() >= 2
    end = (tsplit or full[TIME].max()) - window * 86400
    assert (parts["train"][TIME] < end).all()
    assert (parts["test"].groupby(SESSION)[TIME].min() >= end).all()
    assert (parts["train_tr"][TIME] < end - window * 86400).all()


def pd_concat_unique(a, b):
    import pandas as pd

    return pd.concat([a, b]).drop_duplicates()


def test_bad_raw_input_is_one_line(tmp_path):
    from bench.errors import BenchError

    bad = tmp_path / "views.csv"
    bad.write_text("session_id,item_id\n1,2\n")  # comma, not ';'
    with pytest.raises(BenchError, match=r"views\.csv: missing column\(s\)"):
        raw.read_diginetica_views(bad)
    clicks = tmp_path / "clicks.dat"
    clicks.write_text("1,not-a-time,214,0\n")
    with pytest.raises(
        BenchError, match=r"clicks\.dat: column 'timestamp \(2nd\)' has 1 unparsable"
    ):
        raw.read_yoochoose_clicks(clicks)


@pytest.mark.parametrize(
    "rel, reader, users, ratings",
    [
        ("movielens/ml-100k/u.data", raw.read_movielens_udata, 943, 100_000),
        ("movielens/ml-latest-small/ratings.csv", raw.read_movielens_csv, 610, 100_836),
    ],
)
def test_leave_one_out_holds_out_each_users_last_and_second_to_last(
    shared_data, rel, reader, users, ratings
):
    df = reader(shared_data / rel)
    parts, _ = recipes.leave_one_out(df)
    assert len(parts["test"]) == len(parts["train_valid"]) == users
    assert len(parts["train"]) == ratings - users and len(parts["train_tr"]) == ratings - 2 * users
    # Independently: per user, the latest rating (file order among equal timestamps) is the test
    # item.
    latest = {}
    for k, (u, i, t) in enumerate(zip(df[SESSION], df[ITEM], df[TIME])):
        if u not in latest or (t, k) >= latest[u][0]:
            latest[u] = ((t, k), i)
    test = dict(zip(parts["test"][SESSION], parts["test"][ITEM]))
    assert test == {u: i for u, (_, i) in latest.items()}
    # The history for seen-item filtering is everything before the test item, the validation
    # item comes before the test item, and the tuning history stops before the validation item.
    test_t = parts["test"].set_index(SESSION)[TIME]
    valid_t = parts["train_valid"].set_index(SESSION)[TIME]
    hist = parts["train"].groupby(SESSION)[TIME].max()
    assert (hist <= test_t.reindex(hist.index)).all()
    assert (valid_t <= test_t.reindex(valid_t.index)).all()
    tune_hist = parts["train_tr"].groupby(SESSION)[TIME].max()
    assert (tune_hist <= valid_t.reindex(tune_hist.index)).all()
    # No interaction sits in two parts of the same split.
    rows = lambda d: set(zip(d[SESSION], d[ITEM], d[TIME]))
    assert not rows(parts["train"]) & rows(parts["test"])
    assert not rows(parts["train_tr"]) & (rows(parts["train_valid"]) | rows(parts["test"]))


def test_movielens_1m_and_bert4rec_formats(tmp_path):
    dat = tmp_path / "ratings.dat"
    dat.write_text(
        "1::10::5::300\n1::11::3::100\n1::12::4::200\n2::10::1::50\n2::13::2::60\n2::14::2::70\n"
    )
    parts, _ = recipes.leave_one_out(raw.read_movielens_dat(dat))
    assert dict(zip(parts["test"][SESSION], parts["test"][ITEM])) == {"1": "10", "2": "14"}
    assert dict(zip(parts["train_valid"][SESSION], parts["train_valid"][ITEM])) == {
        "1": "12",
        "2": "13",
    }
    txt = tmp_path / "ml-1m.txt"
    txt.write_text("1 5\n1 6\n1 7\n2 8\n2 9\n2 5\n")  # BERT4Rec: each user's lines in time order
    parts, _ = recipes.leave_one_out(raw.read_bert4rec_txt(txt))
    assert dict(zip(parts["test"][SESSION], parts["test"][ITEM])) == {"1": "7", "2": "5"}
    assert parts["train"].groupby(SESSION)[ITEM].apply(list).to_dict() == {
        "1": ["5", "6"],
        "2": ["8", "9"],
    }


def test_cgenet_pairs_rank_only_the_labels(shared_data):
    from bench.baselines import make_baseline
    from bench.core.evaluate import evaluate
    from bench.datasets import load_dataset

    ds = {
        "name": "rr",
        "kind": "files",
        "train": "retailrocket/cgenet/train_sessions.txt.gz",
        "test": "retailrocket/cgenet/test_pairs.tsv.gz",
    }
    data = load_dataset(ds, str(shared_data), "final")
    assert data.stats()["test_predictions"] == 15_132  # one ranked label per pair
    assert data.test.n_sessions == 15_132 and data.test.n_events > 2 * 15_132
    pop = make_baseline("pop").fit(data.train, len(data.item_map))
    assert evaluate(pop, data.test, [20]).n_events == 15_132


def test_pairs_file_ranks_the_label_given_the_prefix(tmp_path):
    import numpy as np

    from bench.baselines import make_baseline
    from bench.core.evaluate import evaluate
    from bench.data.io import read_session_file
    from bench.data.sessions import ItemMap, to_sessions

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("session_key\tprefix\tlabel\n7\ta b\tc\n7\ta\tb\n8\tc c\ta\n")
    df = read_session_file(pairs)
    train = read_session_file_from_text(tmp_path, "a b c\nc a\na b\n")
    item_map = ItemMap.from_events(train)
    test = to_sessions(df, item_map)
    spop = make_baseline("spop").fit(to_sessions(train, item_map), len(item_map))
    ranks = evaluate(spop, test, [1, 5], "conservative").ranks
    assert len(ranks) == 3  # three labels, prefixes not ranked
    # S-POP after [c, c]: c (2 + pop) first, then by popularity a (3) > b (2): label a ranks 2.
    assert ranks.tolist()[2] == 2.0
    # Targets in order: [a b c] -> b, c; [a b] -> b; [c c a] -> c, a; only the labels count.
    assert np.array_equal(
        test.evaluate_mask[test.target_events()], [False, True, True, False, True]
    )


def read_session_file_from_text(tmp_path, text):
    from bench.data.io import read_session_file

    path = tmp_path / "train.txt"
    path.write_text(text)
    return read_session_file(path)


def test_one_hour_sessions_over_all_events_or_views_only(tmp_path):
    # RetailRocket and Coveo split sessions over all events, then keep views: a cart event in
    # the middle keeps two views 100 minutes apart in one session. REES46 sessionizes views only.
    rr = tmp_path / "events.csv"
    rr.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "0,1,view,10,\n3000000,1,addtocart,11,\n6000000,1,view,12,\n"
        "20000000,1,view,13,\n0,2,view,10,\n"
    )
    df = raw.read_retailrocket_events(rr)
    assert sessions_in_order(df) == [["10", "12"], ["13"], ["10"]]
    rees = tmp_path / "rees.csv"
    rees.write_text(
        "event_time,event_type,product_id,category_id,user_id\n"
        "2019-10-01 00:00:00 UTC,view,5,1,7\n2019-10-01 00:50:00 UTC,cart,6,1,7\n"
        "2019-10-01 01:40:00 UTC,view,8,1,7\n2019-10-01 01:45:00 UTC,view,9,1,7\n"
    )
    assert sessions_in_order(raw.read_rees46(rees)) == [["5"], ["8", "9"]]
    coveo = tmp_path / "browsing.csv"
    coveo.write_text(
        "session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url\n"
        "s1,event_product,detail,pA,0,u\ns1,pageview,,,3000000,u\ns1,event_product,detail,pB,6000000,u\n"
        "s1,event_product,detail,pA,20000000,u\n"
    )
    # Items are indexed by first appearance over all rows, the pageview's empty sku included
    # (pA -> 0, empty -> 1, pB -> 2), as the official script's unique() + merge does.
    assert sessions_in_order(raw.read_coveo(coveo)) == [["0", "2"], ["0"]]


def test_rsc15_tuning_split_reproduces_the_official_files(shared_data):
    """rsc15_100k was made by the official preprocess.py; its train_tr/train_valid are the
    day split of train_full, which our rsc15 split step must give back exactly."""
    from bench.data.io import read_session_file

    base = shared_data / "yoochoose/sessionrec_rsc15_100k"
    full = read_session_file(base / "yoochoose-clicks-100k_train_full.tsv.gz")
    train_tr, valid = recipes._day_split(full, recipes.DAY, recipes.Steps(), "")
    for ours, name in ((train_tr, "train_tr"), (valid, "train_valid")):
        official = read_session_file(base / f"yoochoose-clicks-100k_{name}.tsv.gz")
        key = [SESSION, TIME, ITEM]
        a = ours[key].sort_values(key).reset_index(drop=True)
        b = official[key].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert len(valid) > 0 and valid[SESSION].nunique() < full[SESSION].nunique()
    # And the final split of train_full + test gives both files back.
    test = read_session_file(base / "yoochoose-clicks-100k_test.tsv.gz")
    train, held_out = recipes._day_split(pd.concat([full, test]), recipes.DAY, recipes.Steps(), "")
    key = [SESSION, TIME, ITEM]
    for ours, official in ((train, full), (held_out, test)):
        a = ours[key].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(
            a, official[key].sort_values(key).reset_index(drop=True), check_dtype=False
        )


def test_truncated_gzip_raw_file_is_one_line(shared_data, tmp_path):
    import gzip

    from bench.errors import BenchError

    data = gzip.compress(
        (shared_data / "yoochoose/raw_sample/yoochoose-clicks.sample.dat").read_bytes()
    )
    bad = tmp_path / "yoochoose-clicks.dat.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BenchError, match=r"yoochoose-clicks\.dat\.gz: cannot parse as yoochoose-clicks"
    ):
        raw.read_yoochoose_clicks(bad)
