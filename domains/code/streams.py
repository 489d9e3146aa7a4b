"""Aligned value and type streams of Python source, from `tokenize`, `ast` and `symtable`.

CodeFill (Izadi, Gismondi, Gousios, "CodeFill: Multi-token Code Completion by
Jointly Learning from Structure and Naming Sequences", ICSE 2022) reads two
sequences of equal length: the token *values* (what is written) and the token
*types* (what role each token plays). The official conversion (the notebook in
saltudelft/codefill) runs `tokenize`, upper-cases keywords into their own types,
labels imports MODULE / LIBRARY / LIB / ALIAS, marks `LOAD_GLOBAL` names (via
`dis`) GLOBAL_VARIABLE, names followed by `(` FUNCTION_CALL and every other name
LOCAL_VARIABLE, and drops comments and triple-quoted strings. We keep those
labels and resolve names with `ast` and `symtable` instead of text replacement
and `dis`, which adds the roles the paper's table names.

Types (`TYPES`; index = type id, 0 is padding):

    NEWLINE, INDENT, DEDENT, EOS   structure (end of a logical line, block open/close, end of file)
    NUMBER, STRING                 literals
    OP                             operators and punctuation
    MODULE            `from MODULE import ...` (every dotted part)
    LIBRARY           a name imported without `as` (`import os`, `from m import name`) and its later uses
    LIB               the original name in `import X as Y` / `from m import X as Y` (official label)
    ALIAS             the `as` name of an import and its later uses
    FUNCTION_NAME     the name after `def`
    CLASS_NAME        the name after `class`
    PARAMETER         a function or lambda parameter, where declared and where used in its function
    LOCAL_VARIABLE    a name local to a function, class body or comprehension (incl. closures' free names)
    GLOBAL_VARIABLE   a module-level name, or a global/builtin name read inside a function
    FUNCTION_CALL     a called name: `f(`, `obj.method(` (import roles win, as in the official code)
    ATTRIBUTE         an attribute that is not called: `obj.attr`
    KEYWORD_ARGUMENT  the name in `f(name=value)`
    <KEYWORD>         each keyword is its own upper-case type (DEF, IF, RETURN, TRUE, ...; MATCH, CASE
                      when used as soft keywords), as the official conversion does

Literal normalisation (our rule; the paper gives none we could check): a NUMBER
or STRING whose source text is at most `max_literal_len` characters and one line
is kept verbatim (`0`, `"utf-8"`, `'__main__'`); longer ones become `<NUM_LIT>` /
`<STR_LIT>`. Logical lines made only of string literals (docstrings and other
bare strings) are dropped, as the official conversion drops triple-quoted strings.
Comments and blank lines are dropped; INDENT/DEDENT/NEWLINE are kept as tokens
(`<INDENT>`, ...), and a whole file ends with `<EOS>`.

Code that does not parse (a prefix up to a cursor, a broken file): tokens come
from `tokenize` up to its first error; `ast`/`symtable` roles are used for the
longest prefix of whole lines that parses (after closing an open block with
`pass`), and the tokens after it get *tokenize-only roles*: the heuristics of
`_heuristic_roles` (after `def` -> FUNCTION_NAME, before `(` -> FUNCTION_CALL,
after `.` -> ATTRIBUTE, names of earlier imports, parameters of the enclosing
`def`, else LOCAL_VARIABLE inside an indented block and GLOBAL_VARIABLE at top
level). `CodeStreams.parsed_lines` says how far the exact roles reach.

Cardinal points (`CodeStreams.cardinal`): positions where completion matters,
following the paper's idea of points where a developer invokes completion: the
target token is an identifier, keyword or literal (not an operator or structure
token) and it starts a statement or follows `.`, `(`, `[`, `{`, `,`, `=`, an
augmented assignment, `->`, `:` of an annotation or dict, `;`, `@`, or a keyword
that takes an operand (`import`, `return`, `if`, `in`, `not`, ...).
"""

from __future__ import annotations

import ast
import io
import symtable
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass

# ----------------------------------------------------------------------------- type vocabulary

PAD_TYPE = "<PAD>"
NEWLINE, INDENT, DEDENT, EOS = "NEWLINE", "INDENT", "DEDENT", "EOS"
STRUCTURE_TYPES = (NEWLINE, INDENT, DEDENT, EOS)
NUMBER, STRING, OP = "NUMBER", "STRING", "OP"
MODULE, LIBRARY, LIB, ALIAS = "MODULE", "LIBRARY", "LIB", "ALIAS"
FUNCTION_NAME, CLASS_NAME, PARAMETER = "FUNCTION_NAME", "CLASS_NAME", "PARAMETER"
LOCAL_VARIABLE, GLOBAL_VARIABLE = "LOCAL_VARIABLE", "GLOBAL_VARIABLE"
FUNCTION_CALL, ATTRIBUTE, KEYWORD_ARGUMENT = "FUNCTION_CALL", "ATTRIBUTE", "KEYWORD_ARGUMENT"
ROLE_TYPES = (
    MODULE,
    LIBRARY,
    LIB,
    ALIAS,
    FUNCTION_NAME,
    CLASS_NAME,
    PARAMETER,
    LOCAL_VARIABLE,
    GLOBAL_VARIABLE,
    FUNCTION_CALL,
    ATTRIBUTE,
    KEYWORD_ARGUMENT,
)
# Fixed here (Python 3.10-3.13 share it), not read from `keyword`, so type ids never depend on the interpreter.
PY_KEYWORDS = (
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
)  # fmt: skip
SOFT_KEYWORDS = ("match", "case")
KEYWORD_TYPES = tuple(k.upper() for k in PY_KEYWORDS + SOFT_KEYWORDS)
TYPES: tuple[str, ...] = (PAD_TYPE, *STRUCTURE_TYPES, NUMBER, STRING, OP, *ROLE_TYPES, *KEYWORD_TYPES)
TYPE_IDS: dict[str, int] = {t: i for i, t in enumerate(TYPES)}
IDENTIFIER_TYPES = frozenset(ROLE_TYPES)

# Special values: structure tokens and normalised literals.
NEWLINE_VALUE, INDENT_VALUE, DEDENT_VALUE, EOS_VALUE = "<NEWLINE>", "<INDENT>", "<DEDENT>", "<EOS>"
STR_LIT, NUM_LIT = "<STR_LIT>", "<NUM_LIT>"
STRUCTURE_VALUES = {NEWLINE: NEWLINE_VALUE, INDENT: INDENT_VALUE, DEDENT: DEDENT_VALUE, EOS: EOS_VALUE}
SPECIAL_VALUES = (*STRUCTURE_VALUES.values(), STR_LIT, NUM_LIT)

_KEYWORDS = frozenset(PY_KEYWORDS)
# Keywords after which the next token is an operand a developer would complete.
_OPERAND_KEYWORDS = frozenset((
    "and", "as", "assert", "async", "await", "class", "def", "del", "elif", "except", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "raise", "return", "while", "with", "yield",
    "match", "case",
))  # fmt: skip
_CARDINAL_OPS = frozenset((
    ".", "(", "[", "{", ",", "=", ":", ";", "->", "@", "+=", "-=", "*=", "/=", "//=", "%=", "**=", ">>=", "<<=", "&=",
    "^=", "|=", "@=", ":=", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "//", "%", "**", "|", "&", "^", "~",
))  # fmt: skip
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True, slots=True)
class Token:
    """One source token: normalised value, its type, and where it starts and ends (line 1-based, col 0-based)."""

    value: str
    type: str
    start: tuple[int, int]
    end: tuple[int, int]
    text: str  # the source text before normalisation ('' for structure tokens)


@dataclass
class CodeStreams:
    """Aligned streams of one source: `values[i]` has type `types[i]`.

    cardinal[i]: token i is a cardinal completion point (see the module docstring).
    statement_pos[i]: index of token i among the non-structure tokens of its logical line
        (NEWLINE gets the line's length; INDENT/DEDENT/EOS get -1).
    parsed_lines: lines 1..parsed_lines got `ast`/`symtable` roles; later ones tokenize-only roles.
    syntax_error: 'line L: message' when the source does not parse; error_line: L (or where tokenize stopped).
    """

    tokens: list[Token]
    cardinal: list[bool]
    statement_pos: list[int]
    parsed_lines: int
    num_lines: int
    syntax_error: str | None = None
    tokenize_error: str | None = None
    error_line: int | None = None

    def truncated_at_error(self) -> CodeStreams:
        """The tokens before the line of the first syntax error, then `<EOS>` (a broken file kept up to its error)."""
        if self.error_line is None:
            return self
        keep = [i for i, t in enumerate(self.tokens) if t.start[0] < self.error_line and t.type != EOS]
        # Cut at a statement boundary so no half statement is learned as if complete.
        while keep and self.tokens[keep[-1]].type not in (NEWLINE, DEDENT):
            keep.pop()
        end = self.tokens[keep[-1]].end if keep else (1, 0)
        tokens = [self.tokens[i] for i in keep] + [Token(EOS_VALUE, EOS, end, end, "")]
        statement_pos = _statement_positions(tokens)
        return CodeStreams(
            tokens=tokens,
            cardinal=[is_cardinal(tokens, i, statement_pos) for i in range(len(tokens))],
            statement_pos=statement_pos,
            parsed_lines=min(self.parsed_lines, self.error_line - 1),
            num_lines=self.num_lines,
            syntax_error=self.syntax_error,
            tokenize_error=self.tokenize_error,
            error_line=self.error_line,
        )

    @property
    def values(self) -> list[str]:
        return [t.value for t in self.tokens]

    @property
    def types(self) -> list[str]:
        return [t.type for t in self.tokens]

    @property
    def type_ids(self) -> list[int]:
        return [TYPE_IDS[t.type] for t in self.tokens]

    @property
    def fully_parsed(self) -> bool:
        return self.syntax_error is None and self.tokenize_error is None

    def __len__(self) -> int:
        return len(self.tokens)


# ----------------------------------------------------------------------------- tokenize


@dataclass
class _Raw:
    kind: str  # NAME, NUMBER, STRING, OP, NEWLINE, INDENT, DEDENT
    text: str
    start: tuple[int, int]
    end: tuple[int, int]
    line: str


def _raw_tokens(source: str) -> tuple[list[_Raw], str | None]:
    """Tokens without comments/NL/ENCODING/ENDMARKER, up to the first tokenize error (returned as text)."""
    out: list[_Raw] = []
    fstring_depth, fstring_start, fstring_parts = 0, (0, 0), []
    fstart = getattr(tokenize, "FSTRING_START", -1)  # Python 3.12+ splits f-strings; we keep one STRING
    fend = getattr(tokenize, "FSTRING_END", -1)
    error = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == fstart:
                if fstring_depth == 0:
                    fstring_start, fstring_parts = tok.start, []
                fstring_depth += 1
            if fstring_depth:
                fstring_parts.append(tok.string)
                if tok.type == fend:
                    fstring_depth -= 1
                    if fstring_depth == 0:
                        text = source_slice(source, fstring_start, tok.end)
                        out.append(_Raw("STRING", text, fstring_start, tok.end, tok.line))
                continue
            name = tokenize.tok_name[tok.type]
            if name in ("COMMENT", "NL", "ENCODING", "ENDMARKER"):
                continue
            if name == "ERRORTOKEN":
                if tok.string.isspace() or not tok.string:
                    continue
                name = "OP"  # a lone `$`, `?` or an unterminated quote in a prefix
            out.append(_Raw(name, tok.string, tok.start, tok.end, tok.line))
    except (tokenize.TokenError, SyntaxError) as exc:
        where = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], tuple) else (None,)
        line = getattr(exc, "lineno", None) or where[0]
        error = f"line {line or '?'}: {exc.args[0] if exc.args else type(exc).__name__}"
    return out, error


def source_slice(source: str, start: tuple[int, int], end: tuple[int, int]) -> str:
    lines = source.splitlines(keepends=True)
    if start[0] == end[0]:
        return lines[start[0] - 1][start[1] : end[1]]
    parts = [lines[start[0] - 1][start[1] :], *lines[start[0] : end[0] - 1], lines[end[0] - 1][: end[1]]]
    return "".join(parts)


# ----------------------------------------------------------------------------- parsing what parses


def _parse_prefix(source: str, lines: list[str]) -> tuple[ast.Module | None, str, int, str | None, int | None]:
    """Parse `source`, else the longest prefix of whole lines that parses (an open block closed with `pass`).

    Returns (tree, parsed text, number of lines covered, 'line L: message' of the first error, its line).
    """
    try:
        return ast.parse(source), source, len(lines), None, None
    except (SyntaxError, ValueError) as exc:
        first_error = f"line {getattr(exc, 'lineno', None) or '?'}: {getattr(exc, 'msg', str(exc))}"
        error_line = getattr(exc, "lineno", None) or len(lines)
    cut = min(error_line - 1, len(lines))
    for _ in range(6):  # each try moves the cut above the newest error; a handful suffices in practice
        if cut <= 0:
            break
        text = "".join(lines[:cut])
        last = text.rstrip()
        if last.endswith(":"):
            indent = len(lines[cut - 1]) - len(lines[cut - 1].lstrip())
            text = text.rstrip("\n") + "\n" + " " * (indent + 4) + "pass\n"
        try:
            return ast.parse(text), text, cut, first_error, error_line
        except (SyntaxError, ValueError) as exc:
            lineno = getattr(exc, "lineno", None) or cut
            cut = min(cut - 1, lineno - 1)
    return None, "", 0, first_error, error_line


def _byte_col(line: str, col: int) -> int:
    return col if line.isascii() else len(line[:col].encode("utf-8"))


class _RoleVisitor(ast.NodeVisitor):
    """Roles of name positions (line, utf-8 byte col) from the AST, with scopes from `symtable`."""

    def __init__(self, table: symtable.SymbolTable | None, imported: dict[str, str]):
        self.starts: dict[tuple[int, int], str] = {}
        self.ends: dict[tuple[int, int], str] = {}
        self.docstring_lines: set[int] = set()
        self.imported = imported
        self.tables = [table] if table is not None else []
        self.function_depth = 0
        self._children: dict[int, dict[tuple[str, int], symtable.SymbolTable]] = {}

    # scopes ---------------------------------------------------------------
    def _child(self, name: str, lineno: int) -> symtable.SymbolTable | None:
        if not self.tables:
            return None
        parent = self.tables[-1]
        children = self._children.get(id(parent))
        if children is None:  # get_children() builds new objects on every call: index them once
            children = {}
            for child in parent.get_children():
                children.setdefault((child.get_name(), child.get_lineno()), child)
            self._children[id(parent)] = children
        return children.get((name, lineno))

    def _in_scope(self, node: ast.AST, name: str, body, is_function: bool) -> None:
        child = self._child(name, node.lineno)
        if child is not None:
            self.tables.append(child)
        self.function_depth += is_function
        for item in body:
            self.visit(item)
        self.function_depth -= is_function
        if child is not None:
            self.tables.pop()

    def _outer_parts(self, node) -> None:
        for deco in getattr(node, "decorator_list", []):
            self.visit(deco)
        args = getattr(node, "args", None)
        if isinstance(args, ast.arguments):
            for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
                self.visit(default)
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None:
                    self.starts[(arg.lineno, arg.col_offset)] = PARAMETER
                    if arg.annotation is not None:
                        self.visit(arg.annotation)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        for base in [*getattr(node, "bases", []), *getattr(node, "keywords", [])]:
            self.visit(base)

    def visit_FunctionDef(self, node):
        self._outer_parts(node)
        self._in_scope(node, node.name, node.body, True)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._outer_parts(node)
        self._in_scope(node, "lambda", [node.body], True)

    def visit_ClassDef(self, node):
        self._outer_parts(node)
        self._in_scope(node, node.name, node.body, False)

    def _comprehension(self, node, name: str, parts):
        self._in_scope(node, name, [*parts, *node.generators], True)

    def visit_ListComp(self, node):
        self._comprehension(node, "listcomp", [node.elt])

    def visit_SetComp(self, node):
        self._comprehension(node, "setcomp", [node.elt])

    def visit_GeneratorExp(self, node):
        self._comprehension(node, "genexpr", [node.elt])

    def visit_DictComp(self, node):
        self._comprehension(node, "dictcomp", [node.key, node.value])

    # names ----------------------------------------------------------------
    def _scope_role(self, name: str) -> str:
        if name in self.imported:
            return self.imported[name]
        for table in reversed(self.tables):
            try:
                symbol = table.lookup(name)
            except KeyError:
                continue
            if table.get_type() == "module":
                return GLOBAL_VARIABLE
            if symbol.is_parameter():
                return PARAMETER
            if symbol.is_imported():
                return self.imported.get(name, LIBRARY)
            if symbol.is_global() or symbol.is_declared_global():
                return GLOBAL_VARIABLE
            return LOCAL_VARIABLE
        return LOCAL_VARIABLE if self.function_depth else GLOBAL_VARIABLE

    def visit_Name(self, node):
        self.starts.setdefault((node.lineno, node.col_offset), self._scope_role(node.id))

    def visit_Attribute(self, node):
        self.ends.setdefault((node.end_lineno, node.end_col_offset), ATTRIBUTE)
        self.visit(node.value)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id not in self.imported:
            self.starts[(func.lineno, func.col_offset)] = FUNCTION_CALL
        elif isinstance(func, ast.Attribute):
            self.ends[(func.end_lineno, func.end_col_offset)] = FUNCTION_CALL
        for kw in node.keywords:
            if kw.arg is not None and hasattr(kw, "lineno"):
                self.starts[(kw.lineno, kw.col_offset)] = KEYWORD_ARGUMENT
        self.generic_visit(node)


def _ast_roles(text: str, tree: ast.Module, imported: dict[str, str]) -> _RoleVisitor:
    try:
        table = symtable.symtable(text, "<code>", "exec")
    except (SyntaxError, ValueError):  # e.g. `return` outside a function parses but does not compile
        table = None
    visitor = _RoleVisitor(table, imported)
    visitor.visit(tree)
    return visitor


# ----------------------------------------------------------------------------- roles


def _logical_lines(raw: list[_Raw]) -> Iterator[list[int]]:
    """Indices of the non-structure tokens of each logical line."""
    line: list[int] = []
    for i, tok in enumerate(raw):
        if tok.kind == "NEWLINE":
            if line:
                yield line
            line = []
        elif tok.kind not in ("INDENT", "DEDENT"):
            line.append(i)
    if line:
        yield line


def _import_roles(raw: list[_Raw], line: list[int], roles: dict[int, str], imported: dict[str, str]) -> None:
    """Token-level roles inside one `import`/`from` statement (exact, so used with or without an AST)."""
    first = raw[line[0]].text
    section = "module" if first == "from" else "names"
    for pos, i in enumerate(line):
        text = raw[i].text
        if text == "import":
            section = "names"
            continue
        if raw[i].kind != "NAME" or text in _KEYWORDS:
            continue
        prev = raw[line[pos - 1]].text if pos else ""
        if section == "module":
            roles[i] = MODULE
        elif prev == "as":
            roles[i] = ALIAS
            imported[text] = ALIAS
        else:
            # `import a.b as c`: every part of the dotted name before `as` is LIB.
            rest = [raw[j].text for j in line[pos + 1 :]]
            stop = next((k for k, t in enumerate(rest) if t in (",", ")")), len(rest))
            roles[i] = LIB if "as" in rest[:stop] else LIBRARY
            if roles[i] == LIBRARY and prev != ".":
                imported.setdefault(text, LIBRARY)


def _heuristic_roles(raw: list[_Raw], roles: dict[int, str], imported: dict[str, str]) -> None:
    """Tokenize-only roles for the NAME tokens that have none yet (a pass over all, to track `def` scopes)."""
    params: set[str] = set()
    globals_: set[str] = set()
    depth, in_def_parens, indent = 0, False, 0
    for i, tok in enumerate(raw):
        if tok.kind == "INDENT":
            indent += 1
        elif tok.kind == "DEDENT":
            indent -= 1
            if indent == 0:
                params = set()
        elif tok.kind == "OP":
            if tok.text in _OPEN:
                depth += 1
            elif tok.text in _CLOSE:
                depth = max(depth - 1, 0)
                if depth == 0:
                    in_def_parens = False
        if tok.kind != "NAME" or tok.text in _KEYWORDS:
            continue
        prev = raw[i - 1].text if i else ""
        nxt = raw[i + 1].text if i + 1 < len(raw) else ""
        if prev == "def":
            params, in_def_parens = set(), True
        if i in roles:
            if roles[i] == PARAMETER:
                params.add(tok.text)
            continue
        if prev == "def":
            role = FUNCTION_NAME
        elif prev == "class":
            role = CLASS_NAME
        elif in_def_parens and depth == 1 and prev in ("(", ",", "*", "**", "/"):
            role = PARAMETER
            params.add(tok.text)
        elif prev == ".":
            role = FUNCTION_CALL if nxt == "(" else ATTRIBUTE
        elif tok.text in imported:
            role = imported[tok.text]
        elif nxt == "(":
            role = FUNCTION_CALL
        elif depth > 0 and nxt == "=" and prev in ("(", ","):
            role = KEYWORD_ARGUMENT
        elif tok.text in params:
            role = PARAMETER
        elif indent == 0 or tok.text in globals_:
            role = GLOBAL_VARIABLE
            if indent == 0 and nxt == "=":
                globals_.add(tok.text)
        else:
            role = LOCAL_VARIABLE
        roles[i] = role


def _name_roles(raw: list[_Raw], source: str, lines: list[str]) -> tuple[dict[int, str], int, str | None, int | None]:
    roles: dict[int, str] = {}
    imported: dict[str, str] = {}
    for line in _logical_lines(raw):
        if raw[line[0]].text in ("import", "from") and raw[line[0]].kind == "NAME":
            _import_roles(raw, line, roles, imported)
    for i, tok in enumerate(raw):  # def/class names: exact from tokens
        if tok.kind == "NAME" and i and raw[i - 1].text in ("def", "class") and raw[i - 1].kind == "NAME":
            roles[i] = FUNCTION_NAME if raw[i - 1].text == "def" else CLASS_NAME
    tree, text, parsed_lines, syntax_error, error_line = _parse_prefix(source, lines)
    if tree is not None:
        visitor = _ast_roles(text, tree, imported)
        for i, tok in enumerate(raw):
            if tok.start[0] > parsed_lines:
                break
            if tok.kind != "NAME" or i in roles:
                continue
            start = (tok.start[0], _byte_col(tok.line, tok.start[1]))
            end = (tok.end[0], _byte_col(tok.line, tok.end[1]))
            role = visitor.ends.get(end) or visitor.starts.get(start)
            if role is not None:
                roles[i] = role
    _heuristic_roles(raw, roles, imported)  # names the AST did not cover (beyond the parsed prefix, soft keywords)
    return roles, parsed_lines, syntax_error, error_line


# ----------------------------------------------------------------------------- streams


def normalize_literal(kind: str, text: str, max_literal_len: int = 16) -> str:
    """`text` itself when short and on one line, else `<NUM_LIT>`/`<STR_LIT>`."""
    if len(text) <= max_literal_len and "\n" not in text:
        return text
    return NUM_LIT if kind == NUMBER else STR_LIT


def _drop_bare_strings(raw: list[_Raw]) -> list[_Raw]:
    """Remove logical lines that are only string literals (docstrings), with their NEWLINE."""
    keep = [True] * len(raw)
    for line in _logical_lines(raw):
        if all(raw[i].kind == "STRING" for i in line):
            for i in line:
                keep[i] = False
            nxt = line[-1] + 1
            if nxt < len(raw) and raw[nxt].kind == "NEWLINE":
                keep[nxt] = False
    return [t for t, k in zip(raw, keep) if k]


def _fix_prefix_end(raw: list[_Raw], source: str) -> list[_Raw]:
    """For a prefix: drop tokenize's implicit NEWLINE/DEDENTs at EOF; add INDENT/DEDENT for a cursor on a
    blank line indented deeper/shallower than the block it is in."""
    while raw and raw[-1].kind == "DEDENT" and raw[-1].text == "":
        raw.pop()
    if raw and raw[-1].kind == "NEWLINE" and raw[-1].text == "":
        raw.pop()
    last_line = source.rsplit("\n", 1)[-1] if "\n" in source else None
    if last_line is None or last_line.strip() or not raw or raw[-1].kind != "NEWLINE":
        return raw
    stack = [0]
    for tok in raw:
        if tok.kind == "INDENT":
            stack.append(len(tok.text))
        elif tok.kind == "DEDENT" and len(stack) > 1:
            stack.pop()
    width = len(last_line.expandtabs(8))
    pos = (raw[-1].end[0] + 1, width)
    if width > stack[-1]:
        raw.append(_Raw("INDENT", last_line, (pos[0], 0), pos, last_line))
    else:
        while width < stack[-1] and len(stack) > 1:
            stack.pop()
            raw.append(_Raw("DEDENT", "", pos, pos, last_line))
    return raw


def extract_streams(source: str, partial: bool = False, max_literal_len: int = 16) -> CodeStreams:
    """Value and type streams of `source`.

    partial: `source` is a prefix up to a cursor: no `<EOS>`, no implicit end-of-file NEWLINE/DEDENTs,
        and a cursor on an indented blank line adds the INDENT/DEDENT the next statement will have.
    """
    lines = source.splitlines(keepends=True)
    raw, tokenize_error = _raw_tokens(source)
    if partial:
        raw = _fix_prefix_end(raw, source)
    raw = _drop_bare_strings(raw)
    roles, parsed_lines, syntax_error, error_line = _name_roles(raw, source, lines)

    tokens: list[Token] = []
    line_start = True
    for i, tok in enumerate(raw):
        if tok.kind in STRUCTURE_VALUES:
            tokens.append(Token(STRUCTURE_VALUES[tok.kind], tok.kind, tok.start, tok.end, ""))
            line_start = tok.kind in (NEWLINE, INDENT, DEDENT) or line_start
            continue
        soft = tok.text in SOFT_KEYWORDS and line_start and _is_soft_keyword_statement(raw, i)
        if tok.kind == "NAME" and (tok.text in _KEYWORDS or soft):
            type_ = tok.text.upper()
        elif tok.kind == "NAME":
            type_ = roles.get(i, LOCAL_VARIABLE)
        elif tok.kind in (NUMBER, STRING):
            type_ = tok.kind
        else:
            type_ = OP
        value = normalize_literal(type_, tok.text, max_literal_len) if type_ in (NUMBER, STRING) else tok.text
        tokens.append(Token(value, type_, tok.start, tok.end, tok.text))
        line_start = False
    if not partial:
        end = tokens[-1].end if tokens else (1, 0)
        tokens.append(Token(EOS_VALUE, EOS, end, end, ""))
    statement_pos = _statement_positions(tokens)
    cardinal = [is_cardinal(tokens, i, statement_pos) for i in range(len(tokens))]
    return CodeStreams(
        tokens=tokens,
        cardinal=cardinal,
        statement_pos=statement_pos,
        parsed_lines=parsed_lines,
        num_lines=len(lines),
        syntax_error=syntax_error,
        tokenize_error=tokenize_error,
        error_line=error_line,
    )


def _is_soft_keyword_statement(raw: list[_Raw], i: int) -> bool:
    """`match x:` / `case y:`: the name starts a logical line that ends with `:`, and is not itself assigned,
    annotated or dotted (`match = 1`, `match: int`, `match.group()`)."""
    if i + 1 >= len(raw) or raw[i + 1].kind == "NEWLINE" or raw[i + 1].text in ("=", ":", ".", ",", ")"):
        return False
    j = i + 1
    while j < len(raw) and raw[j].kind != "NEWLINE":
        j += 1
    return raw[j - 1].kind == "OP" and raw[j - 1].text == ":"


def _statement_positions(tokens: list[Token]) -> list[int]:
    out, pos = [], 0
    for tok in tokens:
        if tok.type == NEWLINE:
            out.append(pos)
            pos = 0
        elif tok.type in (INDENT, DEDENT, EOS):
            out.append(-1)
        else:
            out.append(pos)
            pos += 1
    return out


def is_cardinal(tokens: list[Token], i: int, statement_pos: list[int]) -> bool:
    """Whether predicting token i is a cardinal completion point (module docstring)."""
    target = tokens[i]
    if target.type in STRUCTURE_TYPES or target.type == OP:
        return False
    if statement_pos[i] == 0:
        return True
    prev = tokens[i - 1]
    if prev.type == OP:
        return prev.value in _CARDINAL_OPS
    return prev.type in KEYWORD_TYPES and prev.value in _OPERAND_KEYWORDS


# ----------------------------------------------------------------------------- back to text


_NO_SPACE_BEFORE = frozenset([")", "]", "}", ",", ":", ".", ";"])
_NO_SPACE_AFTER = frozenset(["(", "[", "{", ".", "~"])
_SPACED_KEYWORD_CALLS = _KEYWORDS - {"True", "False", "None"}


def _space_between(prev: str, value: str, depth: int, prev_prev: str) -> bool:
    if value in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER:
        return False
    if value in ("(", "["):  # a call or subscript hugs its target; `if (`, `x = [` do not
        return prev in _SPACED_KEYWORD_CALLS or not (prev[:1].isalnum() or prev[:1] in "_\"')]}")
    if depth > 0 and (value == "=" or prev == "="):  # keyword arguments: f(a=1)
        return False
    return not (depth > 0 and prev in ("*", "**") and prev_prev in ("(", ","))  # f(*args, **kw)


def detokenize(values: list[str], indent: str = "    ") -> str:
    """Readable source from values (spacing is a heuristic: the streams do not keep whitespace)."""
    out: list[str] = []
    level, depth = 0, 0
    prev = prev_prev = ""
    for value in values:
        if value == EOS_VALUE:
            break
        if value == NEWLINE_VALUE:
            out.append("\n")
            prev = prev_prev = ""
            continue
        if value in (INDENT_VALUE, DEDENT_VALUE):
            level = max(level + (1 if value == INDENT_VALUE else -1), 0)
            continue
        if not prev:
            out.append(indent * level if (not out or out[-1] == "\n") else "")
        elif prev == "@" and prev_prev == "" or not _space_between(prev, value, depth, prev_prev):
            pass
        else:
            out.append(" ")
        depth += value in _OPEN
        depth = max(depth - (value in _CLOSE), 0)
        out.append(value)
        prev_prev, prev = prev, value
    return "".join(out)
