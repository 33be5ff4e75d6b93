"""Loading and splitting training data, and every way a user's CSV file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import (
    BUNDLED_SOURCE,
    MAX_NUMERIC_CLASSES,
    DataError,
    load_dataset,
    split,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bundled_data_is_the_breast_cancer_set() -> None:
    dataset = load_dataset(None, "target")
    assert dataset.source == BUNDLED_SOURCE
    assert dataset.features.shape == (569, 30)
    assert set(dataset.target) == {0, 1}
    assert (dataset.features.dtypes == "float64").all()


def test_csv_columns_become_doubles_or_categories(tmp_path: Path) -> None:
    csv = write(
        tmp_path / "pets.csv", "age,indoor,kind,label\n3,True,cat,a\n,False,,b\n5,True,dog,a\n"
    )
    dataset = load_dataset(csv, "label")
    assert (dataset.name, dataset.source) == ("pets", str(csv))
    assert dataset.features.dtypes.to_dict() == {
        "age": "float64",
        "indoor": "float64",
        "kind": object,
    }
    assert dataset.target.tolist() == ["a", "b", "a"]


def test_split_is_stratified_and_seeded() -> None:
    dataset = load_dataset(None, "target")
    first, again = split(dataset, 0.25, seed=7), split(dataset, 0.25, seed=7)
    assert len(first.x_test) == 143
    assert first.x_test.index.equals(again.x_test.index)
    share = dataset.target.mean()
    assert first.y_test.mean() == pytest.approx(share, abs=0.01)
    assert first.y_train.mean() == pytest.approx(share, abs=0.01)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist or is not a file"),
        ("", "is empty; it needs a header row and data rows"),
        ("a,b,label\n", "has a header but no data rows"),
        ("a,label\n1,x\n2,x\n", "has one class ('x'); a classifier needs at least two"),
        ("a,label\n1,x\n2,\n3,y\n", "has 1 empty values; every row needs a label"),
        ("label\nx\ny\n", "has no feature columns besides TARGET_COLUMN='label'"),
        ('a,label\n1,"x\n', "is not a readable CSV file"),
        # Every row one field longer than the header: pandas made the first field the index,
        # so each value would sit under its neighbour's name.
        ("a,label\n0,1,x\n1,2,y\n2,3,x\n3,4,y\n", "rows have more fields than the header"),
        ("a,label\n0,0,1,x\n1,1,2,y\n", "rows have more fields than the header"),
    ],
    ids=[
        "missing",
        "empty",
        "header-only",
        "one-class",
        "unlabelled-row",
        "no-features",
        "bad",
        "one-unnamed-field",
        "two-unnamed-fields",
    ],
)
def test_bad_csv_files_are_named_with_the_fix(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=r"DATA_PATH|TARGET_COLUMN") as error:
        load_dataset(path, "label")
    assert message in str(error.value)
    assert "data.csv" in str(error.value)


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"DATA_PATH={tmp_path} does not exist or is not a file"):
        load_dataset(tmp_path, "label")


def test_missing_target_column_lists_the_columns(tmp_path: Path) -> None:
    csv = write(tmp_path / "data.csv", "width,height,kind\n1,2,a\n3,4,b\n")
    with pytest.raises(DataError) as error:
        load_dataset(csv, "label")
    assert str(error.value) == (
        f"TARGET_COLUMN='label' is not a column of DATA_PATH={csv}; "
        "available columns: width, height, kind"
    )


def test_missing_target_column_in_bundled_data() -> None:
    with pytest.raises(DataError, match="not a column of the bundled breast-cancer data"):
        load_dataset(None, "diagnosis")


def test_too_few_rows_per_class_to_split(tmp_path: Path) -> None:
    csv = write(
        tmp_path / "tiny.csv", "a,label\n" + "".join(f"{i},x\n" for i in range(9)) + "9,y\n"
    )
    with pytest.raises(DataError, match=r"cannot split .*tiny.csv with TEST_SIZE=0.2") as error:
        split(load_dataset(csv, "label"), 0.2, seed=0)
    assert "rows per class: {'x': 9, 'y': 1}" in str(error.value)


def test_features_keep_the_frame_order() -> None:
    dataset = load_dataset(None, "target")
    assert list(dataset.frame.columns[:-1]) == list(dataset.features.columns)
    assert isinstance(dataset.target, pd.Series)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,label\n1,x\ninf,y\n2,x\n", "column 'a' of DATA_PATH=.* has 1 infinite values"),
        ("a,label\n1,x\n2,y\n-1e999,x\n", r"infinite values \(first on line 4: -inf\)"),
        ("a,label\n1,x\n2,y\n3,x\noops,y\n", r"numbers in 3 rows and text in 1 \(first on line 5"),
        ("a,label\n1,0.5\n2,1.5\n3,0.5\n", r"TARGET_COLUMN='label' .* looks continuous"),
    ],
    ids=["inf", "overflow", "text-in-numbers", "fractional-target"],
)
def test_values_no_classifier_can_use_are_named(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as error:
        load_dataset(write(tmp_path / "data.csv", content), "label")
    assert "\n" not in str(error.value)


def test_text_columns_with_some_numbers_stay_categories(tmp_path: Path) -> None:
    csv = write(tmp_path / "data.csv", "size,label\nS,x\nM,y\n42,x\nL,y\n")
    assert load_dataset(csv, "label").features["size"].tolist() == ["S", "M", "42", "L"]


def test_many_numeric_labels_are_a_regression_target_in_one_short_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % (MAX_NUMERIC_CLASSES + 1)}\n" for i in range(300))
    with pytest.raises(DataError) as error:
        load_dataset(write(tmp_path / "data.csv", "a,label\n" + rows), "label")
    assert str(error.value).endswith(
        "looks continuous: to train a regressor, set TASK=regression (the project's `task` answer)"
    )
    # Short whatever the temp folder's path (a long TMPDIR, as on macOS, is not the message's).
    assert len(str(error.value).replace(str(tmp_path), "")) < 200


def test_a_split_failure_with_many_classes_does_not_list_them(tmp_path: Path) -> None:
    rows = "".join(f"{i},class-{i}\n" for i in range(200))
    dataset = load_dataset(write(tmp_path / "data.csv", "a,label\n" + rows), "label")
    with pytest.raises(DataError) as error:
        split(dataset, 0.2, seed=0)
    assert "200 classes have fewer than 2 rows (rows per class: 200 classes)" in str(error.value)
    assert len(str(error.value)) < 300


ROWS = "1,2,3,x\n4,5,6,y\n7,8,9,x\n10,11,12,y\n"
FULLWIDTH = "\uff4c\uff41\uff42\uff45\uff4c"  # `label` in fullwidth forms, one NFKC away


@pytest.mark.parametrize(
    ("header", "duplicated"),
    [
        ("a,a,b,label", "'a' (columns 1, 2)"),  # a feature, silently renamed `a.1`
        ("a,b,label,label", "'label' (columns 3, 4)"),  # the label leaked in as `label.1`
        ("a,a,a,label", "'a' (columns 1, 2, 3)"),
        ("a,b,label, label", "'label' (columns 3, 4: also ' label')"),  # the loader keeps spaces
        ("a,label,b,label\t", "'label' (columns 2, 4: also 'label\\t')"),
        ("a,a,a.1,label", "'a' (columns 1, 2)"),  # pandas' `a.1` would collide: it made `a.2`
        ("\ufefflabel,a,b,label", "'label' (columns 1, 4)"),  # a BOM hides in the first name
        ('a,"a",b,label', "'a' (columns 1, 2)"),  # quoted or not, one name
        ("Unnamed: 1,,b,label", "'Unnamed: 1' (columns 1, 2: also '')"),  # pandas' empty name
        (f"a,{FULLWIDTH},b,label", f"'{FULLWIDTH}' (columns 2, 4: also 'label')"),
        ("a,b,label\u00a0,label", "'label\\xa0' (columns 3, 4: also 'label')"),
        ("\n\na,a,b,label", "'a' (columns 1, 2)"),  # blank lines before the header
    ],
    ids=[
        "feature",
        "target",
        "three-times",
        "leading-space",
        "trailing-tab",
        "mangled-name-collides",
        "byte-order-mark",
        "quoted",
        "empty-cell",
        "fullwidth",
        "no-break-space",
        "blank-lines-first",
    ],
)
def test_duplicated_column_names_are_refused_by_name(
    tmp_path: Path, header: str, duplicated: str
) -> None:
    csv = write(tmp_path / "data.csv", f"{header}\n{ROWS}")
    with pytest.raises(DataError) as error:
        load_dataset(csv, "label")
    assert str(error.value) == (
        f"DATA_PATH={csv} has duplicated column names: {duplicated}; give each column one name"
    )


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        (
            ",".join(f"c{i % 300}" for i in range(900)),
            "'c0' (columns 1, 301, 601); 'c1' (columns 2, 302, 602); ",
            "'c4' (columns 5, 305, 605) and 295 more; give each column one name",
        ),
        ("x" * 5000 + "," + "x" * 5000, f"'{'x' * 37}...' (columns 1, 2)", "one name"),
        (",".join(["a"] * 50), "'a' (columns 1, 2, 3, 4, 5 and 45 more)", "one name"),
    ],
    ids=["300-names-3-times", "5000-characters", "50-times"],
)
def test_many_duplicated_names_make_one_short_line(
    tmp_path: Path, header: str, start: str, end: str
) -> None:
    csv = write(tmp_path / "data.csv", f"{header},label\n" + "0," * (header.count(",") + 1) + "x\n")
    with pytest.raises(DataError) as error:
        load_dataset(csv, "label")
    message = str(error.value)
    assert message.startswith(f"DATA_PATH={csv} has duplicated column names: {start}")
    assert message.endswith(end)
    assert len(message) < 300 + len(str(csv)), message


@pytest.mark.parametrize(
    "header",
    ["a,a.1,b,label", "a,A,b,label", ",,b,label", "a b,ab,b,label"],
    ids=["pandas-like-name", "case-differs", "two-empty-names", "inner-space"],
)
def test_distinct_names_that_look_alike_still_load(tmp_path: Path, header: str) -> None:
    csv = write(tmp_path / "data.csv", f"{header}\n{ROWS}")
    assert load_dataset(csv, "label").frame.shape == (4, 4)


# Numeric and categorical columns, each with gaps.
MIXED_CSV = "size,colour,label\n1.5,red,yes\n,green,no\n-0.3,,no\n2.0,blue,yes\n0.1,red,yes\n"


def test_a_csv_url_reads_like_the_file(data_server: tuple[str, Path]) -> None:
    base, folder = data_server
    csv = write(folder / "mixed.csv", MIXED_CSV)
    by_url = load_dataset(f"{base}/mixed.csv", "label")
    pd.testing.assert_frame_equal(by_url.frame, load_dataset(csv, "label").frame)
    assert (by_url.name, by_url.source) == ("mixed", f"{base}/mixed.csv")
    assert by_url.frame["size"].isna().sum() == by_url.frame["colour"].isna().sum() == 1


def unreadable_urls(base: str) -> dict[str, tuple[str, str]]:
    """Each member: a DATA_PATH URL, and what its one-line error says."""
    port = base.rsplit(":", 1)[1]
    return {
        "not-found": (f"{base}/missing.csv", "cannot be read: HTTP Error 404"),
        "refused": ("http://127.0.0.1:9/data.csv", "cannot be read: <urlopen error"),
        "password-hidden": (
            f"http://team:s3cret@127.0.0.1:{port}/missing.csv",
            f"DATA_PATH=http://team:***@127.0.0.1:{port}/missing.csv cannot be read",
        ),
        "s3-without-s3fs": ("s3://bucket/data.csv", "reading s3:// needs s3fs: `uv add s3fs`"),
        "gs-without-gcsfs": ("gs://bucket/data.csv", "reading gs:// needs gcsfs: `uv add gcsfs`"),
        "duplicated-header": (f"{base}/twice.csv", "has duplicated column names: 'a'"),
    }


@pytest.mark.parametrize(
    "member",
    [
        "not-found",
        "refused",
        "password-hidden",
        "s3-without-s3fs",
        "gs-without-gcsfs",
        "duplicated-header",
    ],
)
def test_an_unreadable_url_is_one_line_naming_it(
    data_server: tuple[str, Path], member: str
) -> None:
    base, folder = data_server
    write(folder / "twice.csv", "a,a,label\n1,2,x\n3,4,y\n")
    url, says = unreadable_urls(base)[member]
    with pytest.raises(DataError) as error:
        load_dataset(url, "label")
    message = str(error.value)
    assert says in message, message
    assert "\n" not in message
    assert "s3cret" not in message
