//! A small lexer for Rust source, enough for the rules: string literals (with the line each starts
//! on) apart from the code, comments dropped. It knows normal, byte, C and raw strings, char
//! literals and lifetimes, and nested block comments; it does not parse.

/// A string literal's content (escapes roughly decoded) and the 1-based line it starts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Literal {
    pub line: usize,
    pub text: String,
}

/// A file split into its string literals and its code lines (one per source line, comments removed,
/// every literal reduced to `""`).
pub struct Lexed {
    pub literals: Vec<Literal>,
    pub code_lines: Vec<String>,
}

pub fn lex(source: &str) -> Lexed {
    Lexer { chars: source.chars().collect(), at: 0, line: 1, code: String::new(), literals: Vec::new() }.run()
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: usize,
    code: String,
    literals: Vec<Literal>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    /// Consumes one character, keeping the line count (newlines also go into the code).
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.code.push('\n');
        }
        Some(c)
    }

    fn run(mut self) -> Lexed {
        while let Some(c) = self.peek(0) {
            match c {
                '/' if self.peek(1) == Some('/') => self.line_comment(),
                '/' if self.peek(1) == Some('*') => self.block_comment(),
                '"' => self.string(),
                '\'' => self.quote(),
                c if c.is_alphabetic() || c == '_' => self.ident(),
                _ => {
                    self.bump();
                    if c != '\n' {
                        self.code.push(c);
                    }
                }
            }
        }
        let code_lines = self.code.split('\n').map(str::to_owned).collect();
        Lexed { literals: self.literals, code_lines }
    }

    fn line_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    fn block_comment(&mut self) {
        let mut depth = 0;
        while let Some(c) = self.bump() {
            match (c, self.peek(0)) {
                ('/', Some('*')) => {
                    self.bump();
                    depth += 1;
                }
                ('*', Some('/')) => {
                    self.bump();
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// An identifier, or the prefix of a byte, C or raw string (`b"`, `c"`, `r#"`, `br"`, `cr"`).
    fn ident(&mut self) {
        let start = self.at;
        while self.peek(0).is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.at += 1;
        }
        let ident: String = self.chars[start..self.at].iter().collect();
        match (ident.as_str(), self.peek(0)) {
            ("r" | "br" | "cr", Some('"' | '#')) if self.raw_string() => {}
            ("b" | "c", Some('"')) => self.string(),
            _ => self.code.push_str(&ident),
        }
    }

    /// At `#*"` after an `r` prefix: the raw string up to `"` and as many `#`. False (nothing
    /// consumed) if the hashes are not followed by a quote.
    fn raw_string(&mut self) -> bool {
        let hashes = (0..).take_while(|&i| self.peek(i) == Some('#')).count();
        if self.peek(hashes) != Some('"') {
            return false;
        }
        let line = self.line;
        self.at += hashes + 1;
        let mut text = String::new();
        while let Some(c) = self.bump() {
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                self.at += hashes;
                break;
            }
            text.push(c);
        }
        self.literal(line, text);
        true
    }

    fn string(&mut self) {
        let line = self.line;
        self.bump(); // the opening quote
        let mut text = String::new();
        while let Some(c) = self.bump() {
            match c {
                '"' => break,
                '\\' => match self.bump() {
                    Some('n' | 't' | 'r') => text.push(' '),
                    Some('\n') => {
                        // A line continuation: the next line's leading whitespace is skipped.
                        while self.peek(0).is_some_and(char::is_whitespace) {
                            self.bump();
                        }
                    }
                    Some(escaped) => text.push(escaped),
                    None => break,
                },
                c => text.push(c),
            }
        }
        self.literal(line, text);
    }

    fn literal(&mut self, line: usize, text: String) {
        self.code.push_str("\"\"");
        self.literals.push(Literal { line, text });
    }

    /// A char literal (`'x'`, `'\n'`, `'\u{..}'`) or a lifetime/label (`'a`).
    fn quote(&mut self) {
        self.bump();
        if self.peek(0) == Some('\\') {
            self.at += 2; // the backslash and the escaped character
            while self.bump().is_some_and(|c| c != '\'') {}
            self.code.push_str("' '");
        } else if self.peek(1) == Some('\'') {
            self.at += 2;
            self.code.push_str("' '");
        } else {
            self.code.push('\'');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{lex, Literal};

    #[test]
    fn literals_are_found_with_their_line_and_comments_are_dropped() {
        let source = "// \"not a literal\"\nlet a = \"one\\ntwo\"; /* \"no\" /* nested */ \"no\" */\n\
                      let b = r#\"raw \"quoted\"\n text\"#; let c = '\"'; let e = '\\\\'; let d: &'static str = b\"bytes\";\n";
        let lexed = lex(source);
        assert_eq!(
            lexed.literals,
            vec![
                Literal { line: 2, text: "one two".into() },
                Literal { line: 3, text: "raw \"quoted\"\n text".into() },
                Literal { line: 4, text: "bytes".into() },
            ]
        );
        assert_eq!(lexed.code_lines[0], "");
        assert_eq!(lexed.code_lines[1], "let a = \"\"; ");
        assert_eq!(lexed.code_lines[3], "\"\"; let c = ' '; let e = ' '; let d: &'static str = \"\";");
    }
}
